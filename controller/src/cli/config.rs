//! Connection settings: flag, then environment (both through clap), then `cli.toml`.

use std::path::{Path, PathBuf};

use boltfleet_common::config::{load_toml, ConfigError};
use boltfleet_common::tls::ClientTls;
use serde::Deserialize;

use super::args::ConnectionArgs;
use super::error::CliError;

/// Where the config file is looked for when `--config` is not given, relative to `$HOME`.
pub const DEFAULT_CONFIG: &str = ".config/boltfleet/cli.toml";

/// The contents of `cli.toml`; every key optional, unknown keys refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliFile {
    pub controller: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A config file as loaded, with relative paths already resolved against its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedFile {
    pub path: PathBuf,
    pub values: CliFile,
}

/// Everything needed to reach the controller as an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub controller: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads the config file: `explicit` (from `--config`) must exist; `default` is used only
/// when it does.
pub fn load_file(
    explicit: Option<&Path>,
    default: Option<&Path>,
) -> Result<Option<LoadedFile>, ConfigError> {
    let path = match (explicit, default) {
        (Some(path), _) => path,
        (None, Some(path)) if path.is_file() => path,
        _ => return Ok(None),
    };
    let mut values: CliFile = load_toml(path)?;
    // Paths in the file are relative to the file, as in a kubeconfig: the file stays valid
    // whatever directory the command is run from.
    let dir = path.parent().unwrap_or(Path::new(""));
    for field in [&mut values.ca, &mut values.cert, &mut values.key] {
        if let Some(p) = field.as_mut() {
            *p = dir.join(&*p);
        }
    }
    Ok(Some(LoadedFile {
        path: path.to_path_buf(),
        values,
    }))
}

/// Fills each setting from `given` (flag or environment) or else the file, and names every
/// setting still missing, with the ways to give it, in one line.
pub fn resolve(given: &ConnectionArgs, file: Option<&LoadedFile>) -> Result<Connection, CliError> {
    let empty = CliFile::default();
    let from_file = file.map_or(&empty, |f| &f.values);
    let controller = given
        .controller
        .clone()
        .or_else(|| from_file.controller.clone());
    let ca = given.ca.clone().or_else(|| from_file.ca.clone());
    let cert = given.cert.clone().or_else(|| from_file.cert.clone());
    let key = given.key.clone().or_else(|| from_file.key.clone());
    match (controller, ca, cert, key) {
        (Some(controller), Some(ca), Some(cert), Some(key)) => Ok(Connection {
            controller,
            ca,
            cert,
            key,
        }),
        (controller, ca, cert, key) => {
            let missing: Vec<&str> = [
                ("controller", controller.is_none()),
                ("ca", ca.is_none()),
                ("cert", cert.is_none()),
                ("key", key.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
            Err(CliError::Settings(missing_message(&missing, file)))
        }
    }
}

fn missing_message(missing: &[&str], file: Option<&LoadedFile>) -> String {
    let flags: Vec<String> = missing
        .iter()
        .map(|&m| match m {
            "controller" => "--controller URL".to_string(),
            other => format!("--{other} FILE"),
        })
        .collect();
    let vars: Vec<String> = missing
        .iter()
        .map(|m| format!("BOLTFLEET_{}", m.to_uppercase()))
        .collect();
    let keys: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    let where_file = match file {
        Some(f) => f.path.display().to_string(),
        None => format!("~/{DEFAULT_CONFIG}"),
    };
    let flag = if missing.len() == 1 {
        "the flag"
    } else {
        "the flags"
    };
    format!(
        "missing {}: pass {flag}, set {}, or add {} to {where_file}",
        and_list(&flags),
        and_list(&vars),
        and_list(&keys),
    )
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl Connection {
    /// Reads the CA, certificate and key files into mutual-TLS settings.
    pub fn client_tls(&self) -> Result<ClientTls, CliError> {
        Ok(ClientTls::Mutual {
            ca_pem: read_pem("CA certificate", &self.ca)?,
            cert_pem: read_pem("operator certificate", &self.cert)?,
            key_pem: read_pem("operator key", &self.key)?,
        })
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !text.contains("-----BEGIN ") {
        return Err(CliError::NotPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(controller: Option<&str>, cert: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            controller: controller.map(String::from),
            ca: None,
            cert: cert.map(PathBuf::from),
            key: None,
        }
    }

    fn file(text: &str, dir: &Path) -> LoadedFile {
        let path = dir.join("cli.toml");
        std::fs::write(&path, text).unwrap();
        load_file(Some(&path), None).unwrap().unwrap()
    }

    #[test]
    fn flag_or_env_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = file(
            "controller = 'https://file:7443'\nca = '/etc/ca.pem'\ncert = 'op.pem'\nkey = 'op.key'\n",
            dir.path(),
        );
        let conn = resolve(&args(Some("https://flag:7443"), None), Some(&loaded)).unwrap();
        assert_eq!(conn.controller, "https://flag:7443");
        assert_eq!(conn.ca, PathBuf::from("/etc/ca.pem"));
        // Relative paths in the file are relative to the file.
        assert_eq!(conn.cert, dir.path().join("op.pem"));
        let conn = resolve(&args(None, Some("mine.pem")), Some(&loaded)).unwrap();
        assert_eq!(conn.controller, "https://file:7443");
        assert_eq!(conn.cert, PathBuf::from("mine.pem"));
    }

    #[test]
    fn missing_values_are_named_in_one_line() {
        let err = resolve(&args(Some("https://c:1"), Some("c.pem")), None).unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "missing --ca FILE and --key FILE: pass the flags, set BOLTFLEET_CA and \
             BOLTFLEET_KEY, or add ca and key to ~/.config/boltfleet/cli.toml"
        );
        assert_eq!(err.exit_code(), 64);
    }

    #[test]
    fn default_file_is_optional_but_explicit_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("nope.toml");
        assert_eq!(load_file(None, Some(&absent)).unwrap(), None);
        let err = load_file(Some(&absent), None).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.toml");
        std::fs::write(&path, "controller = 'https://c:1'\nkey_file = 'x'\n").unwrap();
        let err = load_file(Some(&path), None).unwrap_err().to_string();
        assert!(err.contains("key_file"), "{err}");
    }

    #[test]
    fn unreadable_and_non_pem_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let conn = Connection {
            controller: "https://c:1".into(),
            ca,
            cert: junk.clone(),
            key: dir.path().join("missing.key"),
        };
        let err = conn.client_tls().unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().contains("junk.pem"), "{err}");
        let conn = Connection {
            cert: conn.ca.clone(),
            ..conn
        };
        let err = conn.client_tls().unwrap_err().to_string();
        assert!(err.starts_with("cannot read operator key "), "{err}");
        assert!(err.contains("missing.key"), "{err}");
    }
}
