//! Whether the configured database user could restore a backup, checked without changing
//! anything: `SHOW GRANTS` (the current user's grants, with those of its enabled roles on
//! MariaDB) parsed, and matched against the database name with the server's own wildcard rules.
//!
//! Why `SHOW GRANTS` and not `information_schema.SCHEMA_PRIVILEGES`: the latter hides the
//! privileges a MariaDB user holds through a role, so a correctly set up user would be refused.

use std::collections::BTreeSet;

use super::database::{client_sql, mysql};
use super::OpError;
use crate::config::AgentConfig;
use crate::exec::Runner;

/// What every restore needs on the database: the emptying drops each table (`DROP`), the dump
/// is loaded with `DROP TABLE IF EXISTS`, `CREATE TABLE`, `LOCK TABLES ... WRITE` (which also
/// needs `SELECT`), `ALTER TABLE ... DISABLE KEYS` and `INSERT`; the backup itself reads with
/// `SELECT`.
pub const ALWAYS: [&str; 6] = ["SELECT", "INSERT", "CREATE", "DROP", "ALTER", "LOCK TABLES"];

/// Objects of the database whose restore needs more than [`ALWAYS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    pub views: u64,
    pub triggers: u64,
    pub routines: u64,
}

/// The privileges a restore of a database holding `contents` needs.
pub fn required(contents: Contents) -> Vec<&'static str> {
    let mut needed = ALWAYS.to_vec();
    if contents.views > 0 {
        needed.extend(["CREATE VIEW", "SHOW VIEW"]);
    }
    if contents.triggers > 0 {
        needed.push("TRIGGER");
    }
    if contents.routines > 0 {
        needed.extend(["CREATE ROUTINE", "ALTER ROUTINE"]);
    }
    needed
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `ON *.*`.
    Global,
    /// `ON <pattern>.*`: a database name, or a pattern with `%`, `_` and `\` escapes.
    Database(String),
}

/// One `GRANT <privileges> ON <db>.* TO ...` line. Table, column and routine grants are not
/// kept: they cannot create the tables a restore recreates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Upper case, `ALL` for `ALL [PRIVILEGES]`.
    pub privileges: Vec<String>,
    pub scope: Scope,
}

/// Splits `text` at the first `sep` outside backticks, quotes and parentheses.
fn split_outside<'a>(text: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '`' | '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, _) if depth == 0 && text[i..].starts_with(sep) => {
                return Some((&text[..i], &text[i + sep.len()..]));
            }
            _ => {}
        }
    }
    None
}

/// An identifier as `SHOW GRANTS` prints it: backticked (doubled backticks inside), quoted, or
/// bare.
fn unquote(ident: &str) -> String {
    let ident = ident.trim();
    for q in ['`', '\'', '"'] {
        if ident.len() >= 2 && ident.starts_with(q) && ident.ends_with(q) {
            let inner = &ident[1..ident.len() - 1];
            return inner.replace(&format!("{q}{q}"), &q.to_string());
        }
    }
    ident.to_string()
}

/// Parses one line of `SHOW GRANTS`; `None` for role grants, `PROXY`, and grants on tables,
/// columns or routines.
pub fn parse_grant(line: &str) -> Option<Grant> {
    let rest = line.trim().strip_prefix("GRANT ")?;
    let (privileges, rest) = split_outside(rest, " ON ")?;
    let (object, _grantee) = split_outside(rest, " TO ")?;
    let object = object.trim();
    let upper = object.to_ascii_uppercase();
    if ["PROCEDURE ", "FUNCTION ", "PACKAGE "]
        .iter()
        .any(|k| upper.starts_with(k))
    {
        return None;
    }
    let (db, table) = split_outside(object, ".")?;
    if table.trim() != "*" {
        return None;
    }
    let scope = if db.trim() == "*" {
        Scope::Global
    } else {
        Scope::Database(unquote(db))
    };
    let mut list = Vec::new();
    let mut text = privileges;
    loop {
        let (one, more) = split_outside(text, ",").unwrap_or((text, ""));
        let name = one.trim().to_ascii_uppercase();
        let name = match name.as_str() {
            "ALL" | "ALL PRIVILEGES" => "ALL".to_string(),
            _ => name.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if !name.is_empty() {
            list.push(name);
        }
        if more.is_empty() {
            break;
        }
        text = more;
    }
    Some(Grant {
        privileges: list,
        scope,
    })
}

/// Whether database `name` matches a grant's database `pattern` (`%` any run, `_` one
/// character, `\` escapes the next), as the server matches them.
pub fn db_pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((&'%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((&'_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((&'\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Which of `needed` the `grants` do not give on `database`.
pub fn missing<'a>(needed: &[&'a str], grants: &[Grant], database: &str) -> Vec<&'a str> {
    let held: BTreeSet<&str> = grants
        .iter()
        .filter(|g| match &g.scope {
            Scope::Global => true,
            Scope::Database(p) => db_pattern_matches(p, database),
        })
        .flat_map(|g| g.privileges.iter().map(String::as_str))
        .collect();
    if held.contains("ALL") {
        return Vec::new();
    }
    needed
        .iter()
        .copied()
        .filter(|p| !held.contains(p))
        .collect()
}

/// Undoes the client's batch escapes (`\\`, `\t`, `\n`, `\0`).
fn unescape(field: &str) -> String {
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
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

const QUERY: &str = "SELECT CURRENT_USER(), \
     (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()), \
     (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()), \
     (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE());\n\
     SHOW GRANTS;";

/// Checks that the configured user holds on its database what a restore needs; the error
/// names the missing privileges and the database. Runs queries only.
pub async fn check(runner: &Runner, config: &AgentConfig) -> Result<String, OpError> {
    let database = mysql(config)?.database.clone();
    let mut quiet = String::new();
    let out = client_sql(runner, config, QUERY, &mut quiet).await?;
    let mut lines = out.lines();
    let first: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(unescape)
        .collect();
    let count = |i: usize| {
        first
            .get(i)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let user = first.first().cloned().unwrap_or_default();
    let contents = Contents {
        views: count(1),
        triggers: count(2),
        routines: count(3),
    };
    let grants: Vec<Grant> = lines.filter_map(|l| parse_grant(&unescape(l))).collect();
    let needed = required(contents);
    let lacking = missing(&needed, &grants, &database);
    if !lacking.is_empty() {
        return Err(OpError::new(format!(
            "the database user {user} may not restore a backup of {database}: it lacks {} on {database} (a restore needs {}); grant {} ON `{database}`.* to it first",
            lacking.join(", "),
            needed.join(", "),
            lacking.join(", "),
        )));
    }
    Ok(format!(
        "database user {user} holds what a restore of {database} needs: {}\n",
        needed.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Vec<Grant> {
        lines.iter().filter_map(|l| parse_grant(l)).collect()
    }

    #[test]
    fn show_grants_lines_parse_into_scopes_and_privileges() {
        let g = parse_grant(
            "GRANT SELECT, INSERT, LOCK TABLES ON `pass``bolt`.* TO `passbolt`@`localhost` WITH GRANT OPTION",
        )
        .unwrap();
        assert_eq!(g.scope, Scope::Database("pass`bolt".into()));
        assert_eq!(g.privileges, ["SELECT", "INSERT", "LOCK TABLES"]);
        let g = parse_grant("GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost'").unwrap();
        assert_eq!((g.scope, g.privileges), (Scope::Global, vec!["ALL".into()]));
        // MySQL 5.x may print bare names.
        let g = parse_grant("GRANT ALL ON passbolt.* TO 'p'@'%'").unwrap();
        assert_eq!(g.scope, Scope::Database("passbolt".into()));
        for none in [
            "GRANT `zzrole` TO `zzp`@`localhost`",
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
            "GRANT SELECT (id, name), INSERT ON `passbolt`.`users` TO `p`@`%`",
            "GRANT EXECUTE ON PROCEDURE `passbolt`.`p` TO `p`@`%`",
            "SET DEFAULT ROLE `zzrole` FOR `zzp`@`localhost`",
        ] {
            assert_eq!(parse_grant(none), None, "{none}");
        }
        let g = parse_grant(
            "GRANT USAGE ON *.* TO `zzp`@`localhost` IDENTIFIED BY PASSWORD '*D821 ON x TO y'",
        )
        .unwrap();
        assert_eq!(g.privileges, ["USAGE"]);
    }

    #[test]
    fn database_patterns_match_like_the_server() {
        assert!(db_pattern_matches("passbolt", "passbolt"));
        assert!(!db_pattern_matches("passbolt", "passbolt2"));
        assert!(db_pattern_matches("bf\\_%", "bf_1_x"));
        assert!(!db_pattern_matches("bf\\_%", "bfx1"));
        assert!(db_pattern_matches("bf_%", "bfx1"));
        assert!(db_pattern_matches("pass_olt", "passbolt"));
        assert!(db_pattern_matches("%", ""));
        assert!(!db_pattern_matches("a_", "a"));
    }

    #[test]
    fn missing_privileges_are_named() {
        let needed = required(Contents::default());
        assert_eq!(needed, ALWAYS);
        let without_drop = grants(&[
            "GRANT USAGE ON *.* TO `p`@`localhost`",
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, LOCK TABLES ON `passbolt`.* TO `p`@`localhost`",
        ]);
        assert_eq!(missing(&needed, &without_drop, "passbolt"), ["DROP"]);
        assert_eq!(
            missing(&needed, &without_drop, "other").len(),
            ALWAYS.len(),
            "a grant on another database does not count"
        );
        // Wildcard grants, a role's grant (MariaDB lists it), and ALL.
        let spread = grants(&[
            "GRANT SELECT, INSERT, CREATE, ALTER, LOCK TABLES ON `pass\\_%`.* TO `p`@`localhost`",
            "GRANT DROP ON `pass_db`.* TO `dba`",
        ]);
        assert!(missing(&needed, &spread, "pass_db").is_empty());
        assert_eq!(
            missing(&needed, &spread, "passxdb"),
            ["SELECT", "INSERT", "CREATE", "ALTER", "LOCK TABLES"]
        );
        let all = grants(&["GRANT ALL PRIVILEGES ON `passbolt`.* TO `p`@`%`"]);
        let with_views = required(Contents {
            views: 1,
            triggers: 1,
            routines: 1,
        });
        assert!(missing(&with_views, &all, "passbolt").is_empty());
        assert_eq!(
            missing(&with_views, &without_drop, "passbolt"),
            [
                "DROP",
                "CREATE VIEW",
                "SHOW VIEW",
                "TRIGGER",
                "CREATE ROUTINE",
                "ALTER ROUTINE"
            ]
        );
    }

    #[test]
    fn batch_escapes_are_undone() {
        assert_eq!(unescape("`bf\\\\_%`"), "`bf\\_%`");
        assert_eq!(unescape("a\\tb"), "a\tb");
    }
}
