//! A real MariaDB for tests, never depending on a pre-existing server's contents.
//!
//! [`server()`] finds (once per process) a server to use, in this order:
//!
//! 1. `BOLTFLEET_TEST_MYSQL_CNF`: an option file with admin credentials (`[client]` `user`,
//!    `password`, `socket` or `host`/`port`);
//! 2. the local server's default socket as `root` (`mariadb --user=root --protocol=socket`);
//! 3. a private server started in a temporary directory (`mariadb-install-db` + `mariadbd`), shut
//!    down and removed when the test process exits. `BOLTFLEET_TEST_MYSQL_PRIVATE=1` skips 1 and 2.
//!
//! Each test then calls [`MysqlServer::create_database`] for a uniquely named database with its own
//! user and option file; dropping the [`TestDatabase`] removes both.
//!
//! Everything goes through the command-line client (`mariadb`, or `mysql`) in batch mode with an
//! option file (`--defaults-file`): no password ever appears on a command line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::distr::{Alphanumeric, SampleString};

/// Env var naming an option file with admin credentials for an existing server.
pub const ENV_CNF: &str = "BOLTFLEET_TEST_MYSQL_CNF";
/// Env var forcing a private server even when a local one answers.
pub const ENV_PRIVATE: &str = "BOLTFLEET_TEST_MYSQL_PRIVATE";

/// How a client reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (`localhost`).
    Socket(PathBuf),
    /// TCP.
    Tcp { host: String, port: u16 },
}

impl Endpoint {
    /// The `[client]` option lines that select this endpoint.
    pub fn option_lines(&self) -> String {
        match self {
            Endpoint::Socket(path) => format!("socket={}\nprotocol=socket\n", path.display()),
            Endpoint::Tcp { host, port } => format!("host={host}\nport={port}\nprotocol=tcp\n"),
        }
    }
}

/// Which of the three ways found the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// From `BOLTFLEET_TEST_MYSQL_CNF`.
    Configured,
    /// The machine's own server, as root over its default socket.
    Local,
    /// A private server started by this process.
    Private,
}

/// The server the tests of this process use. See the module documentation.
#[derive(Debug)]
pub struct MysqlServer {
    kind: ServerKind,
    client: PathBuf,
    admin_cnf: PathBuf,
    endpoint: Endpoint,
    version: String,
    /// Holds the admin option file (cases 1 and 2) or the private server's files (3).
    work_dir: PathBuf,
}

/// The process-wide server, found or started on first use. Panics when there is none to be had:
/// a test cannot run without it.
pub fn server() -> &'static MysqlServer {
    static SERVER: OnceLock<MysqlServer> = OnceLock::new();
    SERVER.get_or_init(|| match MysqlServer::find_or_start() {
        Ok(server) => server,
        Err(e) => panic!("no MariaDB/MySQL server for the tests: {e:#}"),
    })
}

/// The command-line client to use: `mariadb`, else `mysql`.
pub fn client_binary() -> Result<PathBuf> {
    find_binary(&["mariadb", "mysql"])
        .ok_or_else(|| anyhow!("neither `mariadb` nor `mysql` client found in PATH"))
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Server binaries live in sbin on Debian, which is often not in a normal user's PATH.
    for extra in [
        "/usr/sbin",
        "/usr/local/sbin",
        "/sbin",
        "/usr/bin",
        "/usr/local/bin",
        "/usr/libexec",
        "/usr/local/mysql/bin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if let Ok(meta) = fs::metadata(&candidate) {
                if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                    return Some(candidate);
                }
            }
        }
    }
    None
}

/// Writes `contents` to a new file readable by its owner only.
pub fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// Quotes a value for an option file (double quotes, backslash escapes).
fn option_value(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes a string literal for SQL.
pub fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Quotes an identifier for SQL.
pub fn sql_ident(value: &str) -> String {
    format!("`{}`", value.replace('`', "``"))
}

/// Runs the client with `option_file` on `sql` (stdin), in batch mode without column names, and
/// returns the rows. `database` is selected when given.
pub(crate) fn run_client(
    client: &Path,
    option_file: &Path,
    database: Option<&str>,
    sql: &str,
) -> Result<Vec<Vec<String>>> {
    let mut cmd = Command::new(client);
    cmd.arg(format!("--defaults-file={}", option_file.display()))
        .arg("--batch")
        .arg("--skip-column-names")
        .arg("--default-character-set=utf8mb4");
    if let Some(db) = database {
        cmd.arg(format!("--database={db}"));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", client.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let sql_owned = sql.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(sql_owned.as_bytes()));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        let shown: String = sql.chars().take(300).collect();
        bail!(
            "{} failed ({}): {}\nSQL: {shown}",
            client.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_batch(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses the client's batch output: tab-separated, with `\t`, `\n`, `\\` and `\0` escaped.
fn parse_batch(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| line.split('\t').map(unescape_batch).collect())
        .collect()
}

fn unescape_batch(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses `[client]`-like sections of an option file for the keys that choose the endpoint.
fn endpoint_from_cnf(text: &str) -> Option<Endpoint> {
    let mut section = String::new();
    let mut socket = None;
    let mut host = None;
    let mut port = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            continue;
        }
        if !matches!(
            section.as_str(),
            "client" | "mysql" | "mariadb" | "client-server" | "client-mariadb"
        ) {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = k.trim().replace('_', "-");
        let value = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match key.as_str() {
            "socket" => socket = Some(value),
            "host" => host = Some(value),
            "port" => port = value.parse::<u16>().ok(),
            _ => {}
        }
    }
    match (host, socket) {
        (Some(h), _) if h != "localhost" => Some(Endpoint::Tcp {
            host: h,
            port: port.unwrap_or(3306),
        }),
        (_, Some(s)) => Some(Endpoint::Socket(PathBuf::from(s))),
        (Some(_), None) => None,
        (None, None) => port.map(|p| Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: p,
        }),
    }
}

impl MysqlServer {
    fn find_or_start() -> Result<MysqlServer> {
        let client = client_binary()?;
        let work_dir = tempfile::Builder::new()
            .prefix("bf-mysql-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep();
        let forced_private = std::env::var(ENV_PRIVATE)
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        if !forced_private {
            if let Some(cnf) = std::env::var_os(ENV_CNF).filter(|v| !v.is_empty()) {
                // An explicit choice: no fallback when it does not work.
                remove_at_exit(&work_dir);
                return Self::configured(client, PathBuf::from(cnf), work_dir);
            }
            if let Some(server) = Self::local(&client, &work_dir)? {
                remove_at_exit(&work_dir);
                return Ok(server);
            }
        }
        Self::private(client, work_dir)
    }

    fn configured(client: PathBuf, cnf: PathBuf, work_dir: PathBuf) -> Result<MysqlServer> {
        let text = fs::read_to_string(&cnf)
            .with_context(|| format!("reading {ENV_CNF}={}", cnf.display()))?;
        // Our own copy, so the path stays valid and the mode is 0600.
        let admin_cnf = work_dir.join("admin.cnf");
        write_private_file(&admin_cnf, &text)?;
        let rows = run_client(
            &client,
            &admin_cnf,
            None,
            "SELECT VERSION(), @@socket, @@port",
        )
        .with_context(|| format!("connecting with {ENV_CNF}={}", cnf.display()))?;
        let row = rows.first().cloned().unwrap_or_default();
        let endpoint = endpoint_from_cnf(&text).unwrap_or_else(|| {
            Endpoint::Socket(PathBuf::from(row.get(1).cloned().unwrap_or_default()))
        });
        Ok(MysqlServer {
            kind: ServerKind::Configured,
            client,
            admin_cnf,
            endpoint,
            version: row.first().cloned().unwrap_or_default(),
            work_dir,
        })
    }

    fn local(client: &Path, work_dir: &Path) -> Result<Option<MysqlServer>> {
        let probe = Command::new(client)
            .args([
                "--user=root",
                "--protocol=socket",
                "--batch",
                "--skip-column-names",
                "-e",
                "SELECT VERSION(), @@socket",
            ])
            .stdin(Stdio::null())
            .output();
        let Ok(out) = probe else { return Ok(None) };
        if !out.status.success() {
            return Ok(None);
        }
        let rows = parse_batch(&String::from_utf8_lossy(&out.stdout));
        let Some([version, socket]) = rows
            .first()
            .and_then(|r| <[String; 2]>::try_from(r.clone()).ok())
        else {
            return Ok(None);
        };
        let endpoint = Endpoint::Socket(PathBuf::from(&socket));
        let admin_cnf = work_dir.join("admin.cnf");
        write_private_file(
            &admin_cnf,
            &format!("[client]\nuser=root\n{}", endpoint.option_lines()),
        )?;
        // The pinned socket must work too (it may differ from the probe's defaults).
        if run_client(client, &admin_cnf, None, "SELECT 1").is_err() {
            return Ok(None);
        }
        Ok(Some(MysqlServer {
            kind: ServerKind::Local,
            client: client.to_path_buf(),
            admin_cnf,
            endpoint,
            version,
            work_dir: work_dir.to_path_buf(),
        }))
    }

    fn private(client: PathBuf, work_dir: PathBuf) -> Result<MysqlServer> {
        let install_db = find_binary(&["mariadb-install-db", "mysql_install_db"])
            .ok_or_else(|| anyhow!("no mariadb-install-db to start a private server"))?;
        let mariadbd = find_binary(&["mariadbd", "mysqld"])
            .ok_or_else(|| anyhow!("no mariadbd to start a private server"))?;
        let user = current_user()?;
        let datadir = work_dir.join("data");
        let socket = work_dir.join("mysqld.sock");
        let error_log = work_dir.join("error.log");
        let install_log = work_dir.join("install.log");
        if socket.as_os_str().len() > 100 {
            bail!(
                "socket path too long for a unix socket: {}",
                socket.display()
            );
        }

        let log = fs::File::create(&install_log)?;
        let status = Command::new(&install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg(format!("--user={user}"))
            .arg("--skip-test-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("running {}", install_db.display()))?;
        if !status.success() {
            bail!(
                "{} failed ({status}): {}",
                install_db.display(),
                fs::read_to_string(&install_log).unwrap_or_default()
            );
        }

        // A small shell supervisor: starts the server, stops it when this process ends (even on
        // abort: it watches our pid), then removes the directory.
        let supervisor = r#"
"$BF_MARIADBD" --no-defaults --datadir="$BF_DIR/data" --socket="$BF_DIR/mysqld.sock" \
  --skip-networking --pid-file="$BF_DIR/mysqld.pid" --user="$BF_USER" \
  --log-error="$BF_DIR/error.log" --innodb-buffer-pool-size=64M \
  --skip-name-resolve --max-connections=500 </dev/null >/dev/null 2>&1 &
srv=$!
echo "$srv" > "$BF_DIR/server.pid"
( tail --pid="$BF_PARENT" -f /dev/null >/dev/null 2>&1 || while kill -0 "$BF_PARENT" 2>/dev/null; do sleep 1; done
  kill -TERM "$srv" 2>/dev/null ) &
watcher=$!
wait "$srv"
rc=$?
kill "$watcher" 2>/dev/null
# A server that failed to start: keep its log beside the directory for the error message.
if [ "$rc" != 0 ]; then cp "$BF_DIR/error.log" "$BF_DIR.error.log" 2>/dev/null; fi
rm -rf "$BF_DIR"
exit "$rc"
"#;
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(supervisor)
            .env("BF_MARIADBD", &mariadbd)
            .env("BF_DIR", &work_dir)
            .env("BF_USER", &user)
            .env("BF_PARENT", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the private server's supervisor")?;

        let endpoint = Endpoint::Socket(socket.clone());
        let admin_cnf = work_dir.join("admin.cnf");
        write_private_file(
            &admin_cnf,
            &format!("[client]\nuser=root\n{}", endpoint.option_lines()),
        )?;
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut delay = Duration::from_millis(20);
        let version = loop {
            if socket.exists() {
                if let Ok(rows) = run_client(&client, &admin_cnf, None, "SELECT VERSION()") {
                    break rows
                        .first()
                        .and_then(|r| r.first())
                        .cloned()
                        .unwrap_or_default();
                }
            }
            if let Some(status) = child.try_wait()? {
                let kept = PathBuf::from(format!("{}.error.log", work_dir.display()));
                let log = fs::read_to_string(&error_log)
                    .or_else(|_| fs::read_to_string(&kept))
                    .unwrap_or_default();
                let _ = fs::remove_file(&kept);
                bail!("private mariadbd exited ({status}) before answering:\n{log}");
            }
            if Instant::now() > deadline {
                bail!(
                    "private mariadbd did not answer within 90s:\n{}",
                    fs::read_to_string(&error_log).unwrap_or_default()
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(250));
        };
        // The supervisor is deliberately not waited for: it outlives this handle.
        drop(child);
        Ok(MysqlServer {
            kind: ServerKind::Private,
            client,
            admin_cnf,
            endpoint,
            version,
            work_dir,
        })
    }

    /// How the server was found.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// How clients reach it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `SELECT VERSION()`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The command-line client used (`mariadb` or `mysql`).
    pub fn client(&self) -> &Path {
        &self.client
    }

    /// A private directory that lives as long as the process (holds the admin option file, and
    /// the data of a private server).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// An option file with admin credentials (0600).
    pub fn admin_option_file(&self) -> &Path {
        &self.admin_cnf
    }

    /// Runs SQL as the admin user.
    pub fn admin_exec(&self, sql: &str) -> Result<()> {
        run_client(&self.client, &self.admin_cnf, None, sql).map(|_| ())
    }

    /// Runs a query as the admin user and returns its rows.
    pub fn admin_query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        run_client(&self.client, &self.admin_cnf, None, sql)
    }

    /// A new, empty database with its own user (all privileges on it, nothing else) and an
    /// option file for that user.
    pub fn create_database(&'static self) -> Result<TestDatabase> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand::rng();
        let suffix = Alphanumeric.sample_string(&mut rng, 6).to_lowercase();
        // <= 32 characters: also a valid MySQL 5.7 user name.
        let name = format!("bf_{}_{}_{}", std::process::id(), n, suffix);
        let password = Alphanumeric.sample_string(&mut rng, 24);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()?;
        let option_file = dir.path().join("client.cnf");
        write_private_file(
            &option_file,
            &format!(
                "[client]\nuser={}\npassword={}\n{}",
                option_value(&name),
                option_value(&password),
                self.endpoint.option_lines()
            ),
        )?;
        let mut sql = format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n",
            sql_ident(&name)
        );
        for host in user_hosts() {
            let _ = write!(
                sql,
                "CREATE USER {}@{} IDENTIFIED BY {};\nGRANT ALL PRIVILEGES ON {}.* TO {}@{};\n",
                sql_string(&name),
                sql_string(host),
                sql_string(&password),
                sql_ident(&name),
                sql_string(&name),
                sql_string(host),
            );
        }
        self.admin_exec(&sql)
            .with_context(|| format!("creating test database {name}"))?;
        Ok(TestDatabase {
            server: self,
            name: name.clone(),
            user: name,
            password,
            option_file,
            dir,
        })
    }
}

/// Removes `dir` once this process has exited (statics are never dropped), best effort.
pub fn remove_at_exit(dir: &Path) {
    let script = r#"tail --pid="$BF_PARENT" -f /dev/null >/dev/null 2>&1 || while kill -0 "$BF_PARENT" 2>/dev/null; do sleep 1; done
rm -rf "$BF_DIR""#;
    let _ = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("BF_DIR", dir)
        .env("BF_PARENT", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn user_hosts() -> [&'static str; 2] {
    ["localhost", "%"]
}

fn current_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if user.is_empty() {
        bail!("cannot tell the current user name");
    }
    Ok(user)
}

/// A database of its own for one test, with a dedicated user. Dropped (database and user) on
/// drop, best effort.
#[derive(Debug)]
pub struct TestDatabase {
    server: &'static MysqlServer,
    /// The database name (`bf_<pid>_<counter>_<random>`).
    pub name: String,
    /// The user with all privileges on it (same as the name).
    pub user: String,
    /// That user's password (also in the option file).
    pub password: String,
    /// `[client]` option file for that user: `user`, `password`, `socket` or `host`/`port`
    /// (0600). No `database` key, so `mariadb-dump` accepts it too.
    pub option_file: PathBuf,
    dir: tempfile::TempDir,
}

impl TestDatabase {
    /// The server it lives on.
    pub fn server(&self) -> &'static MysqlServer {
        self.server
    }

    /// How clients reach it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.server.endpoint
    }

    /// A directory that lives as long as this database (holds the option file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL (one or more statements) as the database's user, in the database.
    pub fn exec(&self, sql: &str) -> Result<()> {
        run_client(
            &self.server.client,
            &self.option_file,
            Some(&self.name),
            sql,
        )
        .map(|_| ())
    }

    /// Runs a query and returns its rows (NULL reads as `"NULL"`).
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        run_client(
            &self.server.client,
            &self.option_file,
            Some(&self.name),
            sql,
        )
    }

    /// The first column of the first row, if any.
    pub fn query_value(&self, sql: &str) -> Result<Option<String>> {
        Ok(self
            .query(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next()))
    }

    /// Base tables, sorted.
    pub fn tables(&self) -> Result<Vec<String>> {
        let mut tables: Vec<String> = self
            .query("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        tables.sort();
        Ok(tables)
    }

    /// Whether a table exists.
    pub fn has_table(&self, table: &str) -> Result<bool> {
        Ok(self.tables()?.iter().any(|t| t == table))
    }

    /// Column names of a table, in order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>> {
        Ok(self
            .query(&format!(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                sql_string(table)
            ))?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// `CHECKSUM TABLE` of every base table: table name -> checksum.
    pub fn checksum_tables(&self) -> Result<BTreeMap<String, String>> {
        let tables = self.tables()?;
        if tables.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list: Vec<String> = tables.iter().map(|t| sql_ident(t)).collect();
        let rows = self.query(&format!("CHECKSUM TABLE {} EXTENDED", list.join(", ")))?;
        let mut out = BTreeMap::new();
        for row in rows {
            if let [qualified, checksum, ..] = row.as_slice() {
                let table = qualified
                    .strip_prefix(&format!("{}.", self.name))
                    .unwrap_or(qualified);
                out.insert(table.to_string(), checksum.clone());
            }
        }
        Ok(out)
    }

    /// `SHOW CREATE TABLE` of every base table (without the `AUTO_INCREMENT=` counter): table
    /// name -> definition. With [`checksum_tables`](Self::checksum_tables), compares schema and
    /// contents of a database before and after something.
    pub fn table_definitions(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for table in self.tables()? {
            let rows = self.query(&format!("SHOW CREATE TABLE {}", sql_ident(&table)))?;
            let ddl = rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().nth(1))
                .unwrap_or_default();
            let ddl = ddl
                .split(' ')
                .filter(|w| !w.starts_with("AUTO_INCREMENT="))
                .collect::<Vec<_>>()
                .join(" ");
            out.insert(table, ddl);
        }
        Ok(out)
    }

    /// Locks (`false`) or unlocks (`true`) the database's user: a locked user cannot connect,
    /// which looks like an unreachable database to anything using its option file.
    pub fn set_user_enabled(&self, enabled: bool) -> Result<()> {
        let action = if enabled { "UNLOCK" } else { "LOCK" };
        let mut sql = String::new();
        for host in user_hosts() {
            let _ = writeln!(
                sql,
                "ALTER USER {}@{} ACCOUNT {action};",
                sql_string(&self.user),
                sql_string(host)
            );
        }
        self.server.admin_exec(&sql)
    }

    /// Takes `privileges` (e.g. `["DROP"]`) on the database away from its user, who keeps the
    /// others: a user set up too tightly to restore a backup. Applies to new connections.
    pub fn revoke(&self, privileges: &[&str]) -> Result<()> {
        if privileges.is_empty()
            || privileges
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_uppercase() || c == ' '))
        {
            bail!("not a list of privilege names: {privileges:?}");
        }
        let mut sql = String::new();
        for host in user_hosts() {
            let _ = writeln!(
                sql,
                "REVOKE {} ON {}.* FROM {}@{};",
                privileges.join(", "),
                sql_ident(&self.name),
                sql_string(&self.user),
                sql_string(host)
            );
        }
        self.server.admin_exec(&sql)
    }

    /// Drops every table and view, leaving the database empty (what a restore needs first).
    pub fn empty(&self) -> Result<()> {
        let mut sql = String::from("SET FOREIGN_KEY_CHECKS=0;\n");
        for row in self.query("SHOW FULL TABLES")? {
            if let [name, kind, ..] = row.as_slice() {
                let what = if kind == "VIEW" { "VIEW" } else { "TABLE" };
                let _ = writeln!(sql, "DROP {what} IF EXISTS {};", sql_ident(name));
            }
        }
        self.exec(&sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let mut sql = format!("DROP DATABASE IF EXISTS {};\n", sql_ident(&self.name));
        for host in user_hosts() {
            let _ = writeln!(
                sql,
                "DROP USER IF EXISTS {}@{};",
                sql_string(&self.user),
                sql_string(host)
            );
        }
        let _ = self.server.admin_exec(&sql);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_unescape() {
        assert_eq!(
            parse_batch("a\\tb\tc\\nd\t\\\\\n"),
            vec![vec!["a\tb".to_string(), "c\nd".into(), "\\".into()]]
        );
    }

    #[test]
    fn cnf_endpoint() {
        assert_eq!(
            endpoint_from_cnf("[client]\nuser=root\nsocket=/x/y.sock\n"),
            Some(Endpoint::Socket("/x/y.sock".into()))
        );
        assert_eq!(
            endpoint_from_cnf("[client]\nhost = db.example\nport=3307\n[mysqld]\nsocket=/z\n"),
            Some(Endpoint::Tcp {
                host: "db.example".into(),
                port: 3307
            })
        );
        assert_eq!(endpoint_from_cnf("[client]\nuser=root\n"), None);
    }
}
