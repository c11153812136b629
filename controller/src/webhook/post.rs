//! One HTTP(S) POST of a delivery over hyper and rustls (ring, the platform's roots): a new
//! connection per attempt, one deadline for all of it, no redirect followed.
//!
//! Errors name the receiver by scheme, host and port only: a URL's path or query often holds
//! a token (chat services' incoming webhooks do), and errors end up in logs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The most of an answer's body that is read (and thrown away): receivers answer briefly.
const MAX_BODY: usize = 16 * 1024;
/// The longest URL a webhook may have.
pub const MAX_URL: usize = 2048;

/// A webhook URL, checked: http or https, a host, no user:password@, no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    uri: Uri,
    tls: bool,
    host: String,
    port: u16,
}

/// Why a URL is not a webhook's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(String);

/// Why an attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("cannot connect to {origin}: {reason}")]
    Connect { origin: String, reason: String },
    #[error("TLS with {origin} failed: {reason}")]
    Tls { origin: String, reason: String },
    #[error("HTTP exchange with {origin} failed: {reason}")]
    Exchange { origin: String, reason: String },
    #[error("{origin} did not answer within {}s", after.as_secs())]
    Timeout { origin: String, after: Duration },
}

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
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| BadUrl(format!("not a URL ({e})")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("names no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "must not carry user:password@ (the signature authenticates deliveries)",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(bad("names no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            uri,
            tls,
            host,
            port,
        })
    }

    /// `scheme://host:port`: the receiver, without what the path may hide.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// POSTs `body` as JSON with `headers` to `target` within `timeout`; returns the status,
/// whatever it is (a redirect is an answer like any other, not followed).
pub async fn post(
    target: &Target,
    headers: &[(&'static str, String)],
    body: &str,
    timeout: Duration,
) -> Result<u16, PostError> {
    tokio::time::timeout(timeout, post_inner(target, headers, body))
        .await
        .unwrap_or_else(|_| {
            Err(PostError::Timeout {
                origin: target.origin(),
                after: timeout,
            })
        })
}

async fn post_inner(
    target: &Target,
    headers: &[(&'static str, String)],
    body: &str,
) -> Result<u16, PostError> {
    let origin = target.origin();
    let exchange_error = |reason: String| PostError::Exchange {
        origin: origin.clone(),
        reason,
    };
    let path = target.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = target.uri.authority().map_or("", |a| a.as_str());
    let mut request = Request::post(path)
        .header(HOST, authority)
        .header(
            USER_AGENT,
            concat!("boltfleet-webhook/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONTENT_TYPE, "application/json")
        .header(CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| exchange_error(e.to_string()))?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| PostError::Connect {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
    if !target.tls {
        return exchange(TokioIo::new(tcp), request)
            .await
            .map_err(exchange_error);
    }
    let tls_error = |reason: String| PostError::Tls {
        origin: origin.clone(),
        reason,
    };
    let name = ServerName::try_from(target.host.clone()).map_err(|e| tls_error(e.to_string()))?;
    let stream = TlsConnector::from(client_config().map_err(tls_error)?)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(e.to_string()))?;
    exchange(TokioIo::new(stream), request)
        .await
        .map_err(exchange_error)
}

/// Aborts the connection task when the exchange ends or is dropped by the timeout.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<I>(io: I, request: Request<Full<Bytes>>) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| causes(&e))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = sender.send_request(request).await.map_err(|e| causes(&e))?;
    let status = response.status().as_u16();
    // Read (a bounded part of) the answer so the receiver is not cut off mid-write; what it
    // says does not matter.
    let _ = Limited::new(response.into_body(), MAX_BODY).collect().await;
    Ok(status)
}

/// An error with its causes: hyper's own messages are generic.
fn causes(e: &dyn std::error::Error) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

/// TLS trusting the platform's root certificates, built once.
fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(errors = ?found.errors, "no platform root certificates found: https webhooks will fail");
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
pub(crate) mod tests {
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
