//! The signature a receiver checks, in the manner of GitHub's `X-Hub-Signature-256`: an
//! HMAC-SHA256 of `"<timestamp>.<body>"` under the webhook's secret, hex, in
//! `X-Boltfleet-Signature-256: sha256=<hex>`, with the timestamp (unix seconds) in
//! `X-Boltfleet-Timestamp`. Signing the timestamp with the body lets a receiver refuse old
//! deliveries replayed by someone who saw one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const EVENT_HEADER: &str = "x-boltfleet-event";
pub const DELIVERY_HEADER: &str = "x-boltfleet-delivery";
pub const TIMESTAMP_HEADER: &str = "x-boltfleet-timestamp";
pub const SIGNATURE_HEADER: &str = "x-boltfleet-signature-256";

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The headers of one delivery attempt, signed at `timestamp`.
pub fn headers(
    secret: &str,
    event_type: &str,
    event_id: &str,
    timestamp: i64,
    body: &str,
) -> [(&'static str, String); 4] {
    [
        (EVENT_HEADER, event_type.to_string()),
        (DELIVERY_HEADER, event_id.to_string()),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, signature(secret, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed apart: python3 -c "import hmac,hashlib; print(hmac.new(
        //   b'It is a secret to everybody', b'1700000000.{\"id\":\"e1\"}', hashlib.sha256).hexdigest())"
        assert_eq!(
            signature(
                "It is a secret to everybody",
                1_700_000_000,
                r#"{"id":"e1"}"#
            ),
            "sha256=fb717c4ffe368884d64dad627063debc8c61f7e05cf74ae893ec52d595dae683"
        );
    }

    #[test]
    fn another_secret_timestamp_or_body_gives_another_signature() {
        let base = signature("k", 1, "b");
        assert_ne!(base, signature("k2", 1, "b"));
        assert_ne!(base, signature("k", 2, "b"));
        assert_ne!(base, signature("k", 1, "b "));
        // The separator is part of it: "1" + "1.b" is not "11" + ".b".
        assert_ne!(signature("k", 1, "1.b"), signature("k", 11, ".b"));
    }

    #[test]
    fn headers_name_the_event_the_delivery_and_the_time() {
        let headers = headers("k", "job.rolled_back", "e1", 42, "{}");
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(get("x-boltfleet-event"), "job.rolled_back");
        assert_eq!(get("x-boltfleet-delivery"), "e1");
        assert_eq!(get("x-boltfleet-timestamp"), "42");
        assert_eq!(get("x-boltfleet-signature-256"), signature("k", 42, "{}"));
    }
}
