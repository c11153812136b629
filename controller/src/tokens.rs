//! Join tokens: random secrets handed to one host once; only their hash is stored.

use sha2::{Digest, Sha256};

/// A new token: `bf1.` then 32 random bytes in hex.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("bf1.{}", hex::encode(bytes))
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
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[4..]));
    }
}
