//! Who is on the other end of a connection: identities carried as URI SANs in certificates.

use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "spiffe://boltfleet/";

/// A host id or operator name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid {what} {text:?}: use 1-63 characters of a-z, A-Z, 0-9, '.', '_' or '-', starting with a letter or digit")]
    BadName { what: &'static str, text: String },
    #[error("not a boltfleet identity: {0:?}")]
    NotBoltfleet(String),
}

/// The id of a passbolt host, as named in its agent certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(String);

impl HostId {
    pub fn new(text: &str) -> Result<Self, IdentityError> {
        check_name("host id", text).map(|()| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for HostId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The role and name a certificate grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Agent(HostId),
    Operator(String),
    Controller,
}

impl Identity {
    /// An operator identity, checking the name.
    pub fn operator(name: &str) -> Result<Self, IdentityError> {
        check_name("operator name", name).map(|()| Identity::Operator(name.to_string()))
    }

    /// The URI SAN that carries this identity.
    pub fn uri(&self) -> String {
        match self {
            Identity::Agent(id) => format!("{PREFIX}agent/{id}"),
            Identity::Operator(name) => format!("{PREFIX}operator/{name}"),
            Identity::Controller => format!("{PREFIX}controller"),
        }
    }

    /// Parses a URI SAN; anything but a well-formed boltfleet identity is refused.
    pub fn from_uri(uri: &str) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix(PREFIX)
            .ok_or_else(|| IdentityError::NotBoltfleet(uri.to_string()))?;
        match rest.split_once('/') {
            Some(("agent", id)) => HostId::new(id).map(Identity::Agent),
            Some(("operator", name)) => Identity::operator(name),
            None if rest == "controller" => Ok(Identity::Controller),
            _ => Err(IdentityError::NotBoltfleet(uri.to_string())),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Agent(id) => write!(f, "agent {id}"),
            Identity::Operator(name) => write!(f, "operator {name}"),
            Identity::Controller => f.write_str("controller"),
        }
    }
}

/// The host id a join token (`bf1.<host id>.<secret>`) is bound to.
pub fn token_host(token: &str) -> Result<HostId, IdentityError> {
    let malformed = || IdentityError::BadName {
        what: "join token",
        text: "(hidden)".into(),
    };
    let (host, secret) = token
        .trim()
        .strip_prefix("bf1.")
        .and_then(|rest| rest.rsplit_once('.'))
        .ok_or_else(malformed)?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    HostId::new(host)
}

fn check_name(what: &'static str, text: &str) -> Result<(), IdentityError> {
    let ok = (1..=63).contains(&text.len())
        && text.as_bytes()[0].is_ascii_alphanumeric()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName {
            what,
            text: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for id in [
            Identity::Agent(HostId::new("acme-web-01").unwrap()),
            Identity::operator("alice").unwrap(),
            Identity::Controller,
        ] {
            assert_eq!(Identity::from_uri(&id.uri()).unwrap(), id);
        }
    }

    #[test]
    fn tokens_name_their_host() {
        let secret = "ab".repeat(32);
        assert_eq!(
            token_host(&format!("bf1.web-1.x.{secret}"))
                .unwrap()
                .as_str(),
            "web-1.x"
        );
        for bad in [
            "",
            "bf1.",
            "bf1.web1",
            "bf2.web1.00",
            &format!("bf1..{secret}"),
            "bf1.web1.zz",
        ] {
            assert!(token_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_names_and_foreign_uris_are_refused() {
        for bad in ["", "-x", "a/b", "a b", "../x", &"x".repeat(64), "é"] {
            assert!(HostId::new(bad).is_err(), "{bad:?}");
        }
        for uri in [
            "spiffe://other/agent/x",
            "spiffe://boltfleet/agent/",
            "spiffe://boltfleet/agent/a/b",
            "spiffe://boltfleet/admin/x",
            "spiffe://boltfleet/controller/x",
            "https://boltfleet/agent/x",
        ] {
            assert!(Identity::from_uri(uri).is_err(), "{uri:?}");
        }
    }
}
