//! The `[store]` section of the controller's config, and opening the engine it names: sled in
//! the data dir (the default; nothing to configure), or an etcd cluster shared by several
//! controllers.
//!
//! ```toml
//! [store]
//! engine = "etcd"
//! endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]
//! prefix = "/boltfleet/"        # default
//! ca = "/etc/boltfleet/etcd/ca.crt"
//! cert = "/etc/boltfleet/etcd/client.crt"   # with key, when etcd asks for client certificates
//! key = "/etc/boltfleet/etcd/client.key"
//! name = "controller-a"         # default: the hostname
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::engine::{Engine, EngineError};
use super::etcd_engine::{EtcdEngine, EtcdOptions, EtcdTls, TIMEOUT};
use super::sled_engine::SledEngine;

/// Which engine holds the controller's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// sled under `data_dir`: one controller.
    #[default]
    Sled,
    /// An etcd cluster: several controllers.
    Etcd,
}

/// The `[store]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub engine: EngineKind,
    /// etcd client URLs, `http://host:port` or `https://host:port` (etcd only, required).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Every key of this controller's state starts with it (etcd only).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The CA that signed the etcd members' certificates (for `https://` endpoints).
    pub ca: Option<PathBuf>,
    /// The controller's client certificate and key, when etcd asks for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// This controller's name among the controllers sharing the state.
    #[serde(default = "default_name")]
    pub name: String,
}

pub fn default_prefix() -> String {
    "/boltfleet/".into()
}

/// The hostname, or `controller` where there is none to read.
fn default_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "controller".into())
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            engine: EngineKind::Sled,
            endpoints: Vec::new(),
            prefix: default_prefix(),
            ca: None,
            cert: None,
            key: None,
            name: default_name(),
        }
    }
}

/// An opened engine and, when it is etcd, the etcd engine itself.
pub struct Opened {
    pub engine: Arc<dyn Engine>,
    pub etcd: Option<EtcdEngine>,
}

impl StoreConfig {
    /// An etcd store at `endpoints` (the flags of `migrate-store`).
    pub fn etcd(endpoints: Vec<String>, prefix: String) -> Self {
        Self {
            engine: EngineKind::Etcd,
            endpoints,
            prefix,
            ..Self::default()
        }
    }

    /// Checks the section, reading the TLS files; the error is one line naming the field.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.engine == EngineKind::Sled {
            let etcd_only = [
                ("endpoints", !self.endpoints.is_empty()),
                ("ca", self.ca.is_some()),
                ("cert", self.cert.is_some()),
                ("key", self.key.is_some()),
            ];
            if let Some((field, _)) = etcd_only.iter().find(|(_, set)| *set) {
                return Err(format!("store.{field}: only with engine = \"etcd\""));
            }
            return Ok(());
        }
        check_prefix(&self.prefix)?;
        if self.endpoints.is_empty() {
            return Err("store.endpoints: required with engine = \"etcd\"".into());
        }
        let mut schemes = Vec::new();
        for endpoint in &self.endpoints {
            schemes.push(check_endpoint(endpoint)?);
        }
        let https = schemes[0] == "https";
        if schemes.iter().any(|s| *s != schemes[0]) {
            return Err("store.endpoints: all http:// or all https://".into());
        }
        match (https, &self.ca) {
            (true, None) => return Err("store.ca: required with https:// endpoints".into()),
            (false, Some(_)) => return Err("store.ca: TLS needs https:// endpoints".into()),
            _ => {}
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err("store.key: required with store.cert".into()),
            (None, Some(_)) => return Err("store.cert: required with store.key".into()),
            (Some(_), Some(_)) if self.ca.is_none() => {
                return Err("store.ca: required with store.cert and store.key".into())
            }
            _ => {}
        }
        self.tls().map(drop)
    }

    /// The TLS files' contents, read (and checked to hold PEM) now.
    fn tls(&self) -> Result<Option<EtcdTls>, String> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((read_pem("cert", cert)?, read_pem("key", key)?)),
            _ => None,
        };
        Ok(Some(EtcdTls {
            ca_pem: read_pem("ca", ca)?,
            identity,
        }))
    }

    /// Where the etcd cluster is, with the TLS files read.
    pub fn etcd_options(&self) -> Result<EtcdOptions, String> {
        Ok(EtcdOptions {
            endpoints: self.endpoints.clone(),
            prefix: self.prefix.clone(),
            tls: self.tls()?,
            timeout: TIMEOUT,
        })
    }

    /// Opens the engine: sled in `sled_dir`, or the etcd cluster (connected and answering).
    pub fn open(&self, sled_dir: &Path) -> Result<Arc<dyn Engine>, EngineError> {
        Ok(self.open_engine(sled_dir)?.engine)
    }

    /// Opens the configured engine, keeping the etcd engine's own handle when it is etcd
    /// (for the scheduler's election).
    pub fn open_engine(&self, sled_dir: &Path) -> Result<Opened, EngineError> {
        match self.engine {
            EngineKind::Sled => Ok(Opened {
                engine: Arc::new(SledEngine::open(sled_dir)?),
                etcd: None,
            }),
            EngineKind::Etcd => {
                let options = self
                    .etcd_options()
                    .map_err(|err| EngineError::new("etcd", err))?;
                let etcd = EtcdEngine::open(&options)?;
                Ok(Opened {
                    engine: Arc::new(etcd.clone()),
                    etcd: Some(etcd),
                })
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let first_fine = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 63 || !first_fine || !name.chars().all(fine) {
        return Err(format!(
            "store.name: {name:?}: use 1-63 characters of a-z, A-Z, 0-9, '.', '_' or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    let fine = prefix.starts_with('/')
        && prefix.ends_with('/')
        && prefix.len() <= 128
        && prefix.chars().all(|c| c.is_ascii_graphic());
    if !fine {
        return Err(format!(
            "store.prefix: {prefix:?}: must start and end with / (printable ASCII, at most 128)"
        ));
    }
    Ok(())
}

/// Checks `http://host:port` or `https://host:port`; returns the scheme.
fn check_endpoint(endpoint: &str) -> Result<&'static str, String> {
    let bad =
        || format!("store.endpoints: {endpoint:?} is not http://host:port or https://host:port");
    let (scheme, rest) = if let Some(rest) = endpoint.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        ("http", rest)
    } else {
        return Err(bad());
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host_fine = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
    match port.parse::<u16>() {
        Ok(port) if port > 0 && host_fine => Ok(scheme),
        _ => Err(bad()),
    }
}

fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|err| format!("store.{field}: cannot read {}: {err}", path.display()))?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(format!("store.{field}: {} holds no PEM", path.display()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<StoreConfig, String> {
        #[derive(Deserialize)]
        struct File {
            store: StoreConfig,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.store.check()?;
        Ok(file.store)
    }

    #[test]
    fn sled_is_the_default_and_etcd_takes_its_defaults() {
        let sled = parsed("[store]\n").unwrap();
        assert_eq!(sled.engine, EngineKind::Sled);
        assert_eq!(sled, StoreConfig::default());
        assert!(!sled.name.is_empty());
        let etcd = parsed("[store]\nengine = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n")
            .unwrap();
        assert_eq!(etcd.prefix, "/boltfleet/");
        assert_eq!(etcd.name, default_name());
        let options = etcd.etcd_options().unwrap();
        assert!(options.tls.is_none());
        assert_eq!(options.endpoints, ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.crt");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello").unwrap();
        let etcd = |more: &str| format!("[store]\nengine = \"etcd\"\n{more}\n");
        let http = "endpoints = [\"http://e1:2379\"]";
        let https = "endpoints = [\"https://e1:2379\", \"https://e2:2379\"]";
        let cases = [
            (etcd(""), "store.endpoints: required"),
            (
                etcd("endpoints = [\"e1:2379\"]"),
                "store.endpoints: \"e1:2379\"",
            ),
            (etcd("endpoints = [\"http://e1\"]"), "store.endpoints"),
            (etcd("endpoints = [\"http://e1:0\"]"), "store.endpoints"),
            (
                etcd("endpoints = [\"http://e1:2379/x\"]"),
                "store.endpoints",
            ),
            (
                etcd("endpoints = [\"http://e1:2379\", \"https://e2:2379\"]"),
                "all http:// or all https://",
            ),
            (
                etcd(&format!("{http}\nprefix = \"boltfleet/\"")),
                "store.prefix",
            ),
            (
                etcd(&format!("{http}\nprefix = \"/boltfleet\"")),
                "store.prefix",
            ),
            (etcd(&format!("{http}\nprefix = \"/a b/\"")), "store.prefix"),
            (etcd(https), "store.ca: required with https://"),
            (
                etcd(&format!("{http}\nca = {pem:?}")),
                "store.ca: TLS needs https://",
            ),
            (
                etcd(&format!("{https}\nca = {pem:?}\ncert = {pem:?}")),
                "store.key: required",
            ),
            (
                etcd(&format!("{https}\nca = {pem:?}\nkey = {pem:?}")),
                "store.cert: required",
            ),
            (
                etcd(&format!("{https}\ncert = {pem:?}\nkey = {pem:?}")),
                "store.ca: required",
            ),
            (
                etcd(&format!("{https}\nca = \"/nonexistent/ca.crt\"")),
                "store.ca: cannot read /nonexistent/ca.crt",
            ),
            (etcd(&format!("{https}\nca = {junk:?}")), "store.ca: "),
            (etcd(&format!("{http}\nname = \"-x\"")), "store.name"),
            (etcd(&format!("{http}\nname = \"a/b\"")), "store.name"),
            ("[store]\nengine = \"etcd2\"\n".into(), "etcd2"),
            (
                "[store]\nendpoints = [\"http://e1:2379\"]\n".into(),
                "store.endpoints: only with engine",
            ),
            (
                format!("[store]\nca = {pem:?}\n"),
                "store.ca: only with engine",
            ),
            ("[store]\nendpoint = []\n".into(), "endpoint"),
        ];
        for (text, expected) in cases {
            let err = parsed(&text).expect_err(&text);
            assert!(err.contains(expected), "{text}: {err}");
        }
        // All three, or only the CA.
        parsed(&etcd(&format!("{https}\nca = {pem:?}"))).unwrap();
        let full = parsed(&etcd(&format!(
            "{https}\nca = {pem:?}\ncert = {pem:?}\nkey = {pem:?}"
        )))
        .unwrap();
        let tls = full.etcd_options().unwrap().tls.unwrap();
        assert!(tls.identity.is_some());
        assert!(!format!("{tls:?}").contains("BEGIN"), "no key in logs");
    }
}
