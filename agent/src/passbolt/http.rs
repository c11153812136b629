//! A minimal HTTP(S) GET for passbolt's `/healthcheck/status.json`, over hyper and rustls
//! (ring, platform roots) which the agent already carries for gRPC.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The most of a body that is read; status answers are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// An answer, whatever its status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    pub body: String,
}

/// A URL that could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {url} failed: {source}")]
    Tls {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange with {url} failed: {reason}")]
    Exchange { url: String, reason: String },
    #[error("{url} did not answer within {}s", after.as_secs())]
    Timeout { url: String, after: Duration },
}

/// GETs `url` (`http://` or `https://`, no redirects followed) within `timeout`.
pub async fn get(url: &str, timeout: Duration) -> Result<HttpAnswer, HttpError> {
    tokio::time::timeout(timeout, get_inner(url))
        .await
        .unwrap_or_else(|_| {
            Err(HttpError::Timeout {
                url: url.to_string(),
                after: timeout,
            })
        })
}

async fn get_inner(url: &str) -> Result<HttpAnswer, HttpError> {
    let bad = |reason: &str| HttpError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("expected http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(HOST, authority.as_str())
        .header(
            USER_AGENT,
            concat!("boltfleet-agent/", env!("CARGO_PKG_VERSION")),
        )
        .header(ACCEPT, "application/json")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(&e.to_string()))?;

    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|source| HttpError::Connect {
            url: url.to_string(),
            source,
        })?;
    if !tls {
        return exchange(url, TokioIo::new(tcp), request).await;
    }
    let name = ServerName::try_from(host).map_err(|e| bad(&e.to_string()))?;
    let config = client_config().map_err(|reason| HttpError::Tls {
        url: url.to_string(),
        source: std::io::Error::other(reason),
    })?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|source| HttpError::Tls {
            url: url.to_string(),
            source,
        })?;
    exchange(url, TokioIo::new(stream), request).await
}

/// Aborts the connection task when the exchange ends or is dropped by the timeout.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<I>(
    url: &str,
    io: I,
    request: Request<Empty<Bytes>>,
) -> Result<HttpAnswer, HttpError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // hyper's own messages are generic ("error reading a body"); the cause says more.
    let failed = |e: &dyn std::error::Error| {
        let mut reason = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        HttpError::Exchange {
            url: url.to_string(),
            reason,
        }
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| failed(&e))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| failed(&*e))?
        .to_bytes();
    Ok(HttpAnswer {
        status,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
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
                tracing::warn!(errors = ?found.errors, "no platform root certificates found");
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
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Serves one canned raw HTTP answer per connection; returns the base URL.
    async fn serve(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn fetches_status_answers() {
        let url = serve("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"body\":\"OK\"}   ").await;
        let answer = get(
            &format!("{url}/healthcheck/status.json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "{\"body\":\"OK\"}   ");

        let url =
            serve("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops").await;
        let answer = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (500, "oops"));

        let url = serve("HTTP/1.1 301 Moved Permanently\r\nLocation: https://x.example/h\r\nContent-Length: 0\r\n\r\n").await;
        let answer = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.location.as_deref(), Some("https://x.example/h"));
    }

    #[tokio::test]
    async fn failures_are_errors() {
        let err = get("ftp://localhost/x", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::BadUrl { .. }), "{err}");
        let err = get("not a url", Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, HttpError::BadUrl { .. }), "{err}");

        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err}");

        // Accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let err = get(&url, Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err}");

        let url = serve("garbage\r\n\r\n").await;
        let err = get(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, HttpError::Exchange { .. }), "{err}");
    }

    #[tokio::test]
    async fn https_checks_the_certificate() {
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
        let err = get(
            &format!("https://localhost:{port}/healthcheck/status.json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        // A self-signed certificate is not in the platform roots: the handshake is refused.
        assert!(matches!(err, HttpError::Tls { .. }), "{err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    }
}
