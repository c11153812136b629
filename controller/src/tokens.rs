//! Join tokens: random secrets handed to one host once; only their hash is stored.

use boltfleet_common::identity::HostId;
use sha2::{Digest, Sha256};

/// A new token for `host`: `bf1.<host id>.` then 32 random bytes in hex. The host id is not
/// secret; carrying it lets the agent put its identity in the CSR before it has a certificate.
pub fn generate(host: &HostId) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("bf1.{host}.{}", hex::encode(bytes))
}

/// The key a token is stored under.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let host = HostId::new("web1").unwrap();
        let (a, b) = (generate(&host), generate(&host));
        assert_ne!(a, b);
        assert_eq!(a.len(), "bf1.web1.".len() + 64);
        assert_eq!(boltfleet_common::identity::token_host(&a).unwrap(), host);
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[9..]));
    }
}
