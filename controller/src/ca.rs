//! The controller's PKI on disk: `init` creates it, `operator-cert` and enrollment use it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use boltfleet_common::files::{create_private_dir, write_atomic, write_private};
use boltfleet_common::grant::Grant;
use boltfleet_common::identity::Identity;
use boltfleet_common::pki::{CertAndKey, CertificateAuthority, PkiError};

/// Validity of the controller's own server certificate.
const SERVER_CERT_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// Validity of operator certificates (from `operator-cert` and `IssueOperatorCert`).
pub const OPERATOR_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Something wrong with the controller's data directory.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already holds a CA; refusing to replace it (agents trust the old one)")]
    AlreadyInitialized(PathBuf),
    #[error("{0} holds no CA: run `boltfleet-controller init --data-dir {0}` first")]
    NotInitialized(PathBuf),
    #[error("--join {dir}: no {missing} there; copy ca.crt and ca.key from the first controller's data dir into it")]
    NothingToJoin { dir: PathBuf, missing: PathBuf },
    #[error("--join {dir}: ca.key is not the key of ca.crt (copy both from the same controller)")]
    JoinKeyMismatch { dir: PathBuf },
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl CaError {
    /// Whether the operator asked for something that cannot be done (exit status 64), rather
    /// than the machine failing.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CaError::AlreadyInitialized(_)
                | CaError::NotInitialized(_)
                | CaError::NothingToJoin { .. }
                | CaError::JoinKeyMismatch { .. }
        )
    }
}

/// Paths of the files in a controller data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("controller.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("controller.key")
    }
    pub fn store(&self) -> PathBuf {
        self.root.join("state")
    }
    /// Where `serve` writes the address it is bound to (useful with port 0).
    pub fn listen_addr_file(&self) -> PathBuf {
        self.root.join("listen.addr")
    }
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the CA and the controller's server certificate (with `sans` as DNS names or IPs,
/// plus `localhost` and `127.0.0.1`); returns the CA pin `sha256:<hex>`.
pub fn init(dir: &Path, sans: &[String]) -> Result<String, CaError> {
    refuse_initialized(dir)?;
    let keys = CertificateAuthority::generate()?;
    write_data_dir(dir, &keys, sans)
}

/// Creates a data dir for another controller of the same fleet: the CA is the one whose
/// `ca.crt` and `ca.key` were copied from the first controller's data dir into `from`, the
/// server certificate is this controller's own (for `sans`, as [`init`]). Returns the CA pin,
/// the first controller's: agents enrolled on either trust both.
pub fn join(dir: &Path, from: &Path, sans: &[String]) -> Result<String, CaError> {
    refuse_initialized(dir)?;
    let source = DataDir::new(from);
    for path in [source.ca_cert(), source.ca_key()] {
        if !path.is_file() {
            return Err(CaError::NothingToJoin {
                dir: from.to_path_buf(),
                missing: path,
            });
        }
    }
    let keys = CertAndKey {
        cert_pem: read(&source.ca_cert())?,
        key_pem: read(&source.ca_key())?,
    };
    match CertificateAuthority::load(&keys.cert_pem, &keys.key_pem) {
        Err(PkiError::KeyMismatch) => Err(CaError::JoinKeyMismatch {
            dir: from.to_path_buf(),
        }),
        Err(err) => Err(err.into()),
        Ok(_) => write_data_dir(dir, &keys, sans),
    }
}

/// Refuses a data dir that holds a CA or a server identity already.
fn refuse_initialized(dir: &Path) -> Result<(), CaError> {
    let paths = DataDir::new(dir);
    if paths.ca_key().exists() || paths.server_key().exists() {
        return Err(CaError::AlreadyInitialized(dir.to_path_buf()));
    }
    Ok(())
}

/// Writes the CA `keys` (the key 0600) and a server certificate issued by it for `sans` into
/// `dir`; returns the CA pin.
fn write_data_dir(dir: &Path, keys: &CertAndKey, sans: &[String]) -> Result<String, CaError> {
    let paths = DataDir::new(dir);
    create_private_dir(dir).map_err(io_err(dir))?;
    let ca = CertificateAuthority::load(&keys.cert_pem, &keys.key_pem)?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for san in sans {
        if !names.contains(san) {
            names.push(san.clone());
        }
    }
    let server = ca.issue(&Identity::Controller, &names, SERVER_CERT_VALIDITY)?;
    let chain = format!("{}{}", server.cert_pem, keys.cert_pem);
    write_private(&paths.ca_key(), keys.key_pem.as_bytes()).map_err(io_err(&paths.ca_key()))?;
    write_atomic(&paths.ca_cert(), keys.cert_pem.as_bytes(), 0o644)
        .map_err(io_err(&paths.ca_cert()))?;
    write_private(&paths.server_key(), server.key_pem.as_bytes())
        .map_err(io_err(&paths.server_key()))?;
    write_atomic(&paths.server_cert(), chain.as_bytes(), 0o644)
        .map_err(io_err(&paths.server_cert()))?;
    Ok(ca.fingerprint())
}

/// Loads the CA of an initialized data directory.
pub fn load_ca(dir: &Path) -> Result<CertificateAuthority, CaError> {
    let paths = DataDir::new(dir);
    if !paths.ca_key().exists() {
        return Err(CaError::NotInitialized(dir.to_path_buf()));
    }
    Ok(CertificateAuthority::load(
        &read(&paths.ca_cert())?,
        &read(&paths.ca_key())?,
    )?)
}

/// The controller's server chain and key, PEM.
pub fn load_server_identity(dir: &Path) -> Result<(String, String), CaError> {
    let paths = DataDir::new(dir);
    Ok((read(&paths.server_cert())?, read(&paths.server_key())?))
}

/// Writes `OUT/ca.crt`, `OUT/NAME.crt` and `OUT/NAME.key` (0600) for an operator with `grant`
/// (role and tenants) in its certificate.
pub fn operator_cert(
    dir: &Path,
    name: &str,
    grant: &Grant,
    out: &Path,
) -> Result<Vec<PathBuf>, CaError> {
    let ca = load_ca(dir)?;
    let identity = Identity::operator(name).map_err(PkiError::from)?;
    let issued = ca.issue_operator(&identity, grant, OPERATOR_CERT_VALIDITY)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let files = [
        (out.join("ca.crt"), ca.cert_pem().to_string(), 0o644),
        (
            out.join(format!("{name}.crt")),
            issued.cert_pem.clone(),
            0o644,
        ),
        (
            out.join(format!("{name}.key")),
            issued.key_pem.clone(),
            0o600,
        ),
    ];
    for (path, text, mode) in &files {
        write_atomic(path, text.as_bytes(), *mode).map_err(io_err(path))?;
    }
    Ok(files.into_iter().map(|(p, _, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_private_keys_and_refuses_to_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        let pin = init(dir.path(), &["ctl.example".into()]).unwrap();
        assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");
        let paths = DataDir::new(dir.path());
        for key in [paths.ca_key(), paths.server_key()] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        assert_eq!(load_ca(dir.path()).unwrap().fingerprint(), pin);
        assert!(matches!(
            init(dir.path(), &[]),
            Err(CaError::AlreadyInitialized(_))
        ));
    }

    #[test]
    fn join_takes_the_ca_issues_its_own_identity_and_keeps_the_pin() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pin = init(first.path(), &[]).unwrap();
        let copy = second.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        for name in ["ca.crt", "ca.key"] {
            std::fs::copy(first.path().join(name), copy.join(name)).unwrap();
        }
        let dir = second.path().join("data");
        assert_eq!(join(&dir, &copy, &["c1.example".into()]).unwrap(), pin);
        let paths = DataDir::new(&dir);
        for key in [paths.ca_key(), paths.server_key()] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let theirs = load_server_identity(first.path()).unwrap();
        assert_ne!(
            load_server_identity(&dir).unwrap().1,
            theirs.1,
            "own server key"
        );
        assert_eq!(load_ca(&dir).unwrap().fingerprint(), pin);
        let again = join(&dir, &copy, &[]).unwrap_err();
        assert!(matches!(again, CaError::AlreadyInitialized(_)), "{again}");
        assert!(again.is_usage());
    }

    #[test]
    fn join_refuses_a_dir_without_the_ca_or_with_a_key_of_another() {
        let base = tempfile::tempdir().unwrap();
        let (one, other) = (base.path().join("one"), base.path().join("other"));
        init(&one, &[]).unwrap();
        init(&other, &[]).unwrap();
        let copy = base.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        std::fs::copy(one.join("ca.crt"), copy.join("ca.crt")).unwrap();
        let missing = join(&base.path().join("a"), &copy, &[]).unwrap_err();
        assert!(missing.to_string().contains("ca.key"), "{missing}");
        assert!(missing.is_usage());
        std::fs::copy(other.join("ca.key"), copy.join("ca.key")).unwrap();
        let mixed = join(&base.path().join("b"), &copy, &[]).unwrap_err();
        assert!(matches!(mixed, CaError::JoinKeyMismatch { .. }), "{mixed}");
        assert!(!base.path().join("b").exists(), "nothing written");
    }

    #[test]
    fn operator_cert_names_its_files() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &[]).unwrap();
        let out = dir.path().join("ops");
        let files = operator_cert(dir.path(), "alice", &Grant::legacy(), &out).unwrap();
        assert_eq!(files[1], out.join("alice.crt"));
        let mode = std::fs::metadata(out.join("alice.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(operator_cert(dir.path(), "bad/name", &Grant::legacy(), &out).is_err());
    }
}
