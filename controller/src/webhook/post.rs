//! One webhook delivery: a POST with the shared HTTP client ([`boltfleet_common::http`]: a new
//! connection per attempt, one deadline for all of it, no redirect followed, errors naming the
//! receiver by origin only), to a URL checked for what a webhook's may be.

use std::time::Duration;

use boltfleet_common::http::{self, Call};
use hyper::body::Bytes;
use hyper::Method;

pub use boltfleet_common::http::HttpError as PostError;

/// The most of an answer's body that is read (and thrown away): receivers answer briefly.
const MAX_BODY: usize = 16 * 1024;
/// The longest URL a webhook may have.
pub const MAX_URL: usize = 2048;

/// A webhook URL, checked: http or https, a host, no user:password@, no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(http::Target);

/// Why a URL is not a webhook's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(String);

impl Target {
    /// Parses and checks a webhook URL.
    pub fn parse(url: &str) -> Result<Self, BadUrl> {
        let bad = |why: &str| BadUrl(why.to_string());
        if url.len() > MAX_URL {
            return Err(BadUrl(format!("longer than {MAX_URL} bytes")));
        }
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err(bad("must start with http:// or https://"));
        }
        if url.contains('#') {
            return Err(bad("a fragment (#...) is never sent: leave it out"));
        }
        let target = http::Target::parse(url).map_err(|e| BadUrl(e.0))?;
        if target.has_userinfo() {
            return Err(bad(
                "must not carry user:password@ (the signature authenticates deliveries)",
            ));
        }
        Ok(Self(target))
    }

    /// `scheme://host:port`: the receiver, without what the path may hide.
    pub fn origin(&self) -> String {
        self.0.origin()
    }
}

/// POSTs `body` as JSON with `headers` to `target` within `timeout`; returns the status,
/// whatever it is (a redirect is returned, not followed).
pub async fn post(
    target: &Target,
    headers: &[(&'static str, String)],
    body: &str,
    timeout: Duration,
) -> Result<u16, PostError> {
    let mut all = vec![
        (
            "user-agent",
            concat!("boltfleet-webhook/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        ("content-type", "application/json".to_string()),
    ];
    all.extend(headers.iter().cloned());
    let call = Call {
        method: Method::POST,
        headers: &all,
        body: Bytes::from(body.to_string()),
        // Read (a bounded part of) the answer so the receiver is not cut off mid-write; what
        // it says does not matter.
        max_body: MAX_BODY,
        need_body: false,
        timeout,
    };
    Ok(http::send(&target.0, call).await?.status)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Serves one canned raw answer per connection and hands over what was asked.
    pub(crate) async fn serve(
        answer: &'static str,
    ) -> (String, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut asked = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body of the Content-Length they announce.
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    asked.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&asked).to_string();
                    let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        body.len() >= length
                    });
                    if n == 0 || complete {
                        break;
                    }
                }
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
                let _ = tx.send(String::from_utf8_lossy(&asked).into_owned()).await;
            }
        });
        (format!("http://{addr}"), rx)
    }

    #[test]
    fn webhook_urls_are_http_or_https_with_a_host_and_no_userinfo() {
        let ok = Target::parse("https://hooks.example:8443/boltfleet?key=x").unwrap();
        assert_eq!(ok.origin(), "https://hooks.example:8443");
        assert_eq!(
            Target::parse("http://[::1]/h").unwrap().origin(),
            "http://[::1]:80"
        );
        for (url, why) in [
            ("ftp://hooks.example/", "http:// or https://"),
            ("hooks.example/h", "http:// or https://"),
            ("https://user:pw@hooks.example/", "user:password@"),
            ("https://hooks.example/#x", "fragment"),
            ("https:///path", "URL"),
            ("not a url", "http:// or https://"),
            ("http://exa mple/", "not a URL"),
        ] {
            let err = Target::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let long = format!("https://h.example/{}", "a".repeat(MAX_URL));
        assert!(Target::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("longer"));
    }

    #[tokio::test]
    async fn posts_the_body_with_the_headers_and_returns_any_status() {
        let (url, mut asked) = serve("HTTP/1.1 204 No Content\r\n\r\n").await;
        let target = Target::parse(&format!("{url}/hook?k=1")).unwrap();
        let headers = [("x-boltfleet-event", "test".to_string())];
        let status = post(&target, &headers, "{\"a\":1}", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status, 204);
        let request = asked.recv().await.unwrap();
        assert!(
            request.starts_with("POST /hook?k=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("x-boltfleet-event: test\r\n"), "{request}");
        assert!(
            request.contains("content-type: application/json\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");

        let (url, _) = serve(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let status = post(
            &Target::parse(&url).unwrap(),
            &[],
            "{}",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(status, 302, "a redirect is returned, not followed");
    }

    #[tokio::test]
    async fn no_answer_is_an_error_naming_the_origin_only() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = Target::parse(&format!("http://127.0.0.1:{port}/secret-token")).unwrap();
        let err = post(&closed, &[], "{}", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, PostError::Connect { .. }), "{err}");
        assert!(!err.to_string().contains("secret-token"), "{err}");

        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::parse(&format!("http://{}/", silent.local_addr().unwrap())).unwrap();
        let err = post(&target, &[], "{}", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, PostError::Timeout { .. }), "{err}");

        let (url, _) = serve("garbage\r\n\r\n").await;
        let err = post(
            &Target::parse(&url).unwrap(),
            &[],
            "{}",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PostError::Exchange { .. }), "{err}");
    }

    #[tokio::test]
    async fn https_checks_the_receivers_certificate() {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = key.cert.der().clone();
        let private =
            rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], private)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((sock, _)) = listener.accept().await {
                let _ = acceptor.accept(sock).await;
            }
        });
        let target = Target::parse(&format!("https://localhost:{port}/hook")).unwrap();
        let err = post(&target, &[], "{}", Duration::from_secs(5))
            .await
            .unwrap_err();
        // A self-signed certificate is not among the platform's roots.
        assert!(matches!(err, PostError::Tls { .. }), "{err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    }
}
