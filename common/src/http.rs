//! One HTTP/1.1 request over hyper and rustls (ring, the platform's root certificates): a new
//! connection per request, one deadline for all of it, no redirect followed (a 3xx is an
//! answer like any other, with its `Location`), and at most a bounded part of the body read.
//! Used by the agent (passbolt's status URL) and the controller (webhook deliveries).
//!
//! Errors name the server by scheme, host and port only: a URL's path or query often holds a
//! token (chat services' incoming webhooks do), and errors end up in logs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, LOCATION};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An `http://` or `https://` URL with a host, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    uri: Uri,
    tls: bool,
    host: String,
    port: u16,
}

/// Why a text is not such a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(pub String);

/// An answer, whatever its status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    /// The body, cut at the request's `max_body`.
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
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
    /// Parses `url`: `http://` or `https://` and a host (an IPv6 host in brackets).
    pub fn parse(url: &str) -> Result<Self, BadUrl> {
        let bad = |why: &str| BadUrl(why.to_string());
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| BadUrl(format!("not a URL ({e})")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("names no host"))?;
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

    /// Whether the URL carries `user:password@` before its host.
    pub fn has_userinfo(&self) -> bool {
        self.uri
            .authority()
            .is_some_and(|a| a.as_str().contains('@'))
    }

    /// `scheme://host:port`: the server, without what the path may hide.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// One request to a [`Target`]: its method, headers (besides `Host` and `Connection: close`,
/// always sent), body, how much of the answer's body is read and the deadline of it all.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Method,
    pub headers: &'a [(&'static str, String)],
    pub body: Bytes,
    pub max_body: usize,
    /// Whether an answer's body that cannot be read in full (cut off, longer than
    /// `max_body`) makes the request fail; when not, the answer comes with an empty body.
    pub need_body: bool,
    pub timeout: Duration,
}

/// Sends `call` to `target` on a new connection and returns the answer.
pub async fn send(target: &Target, call: Call<'_>) -> Result<Answer, HttpError> {
    let timeout = call.timeout;
    tokio::time::timeout(timeout, send_inner(target, call))
        .await
        .unwrap_or_else(|_| {
            Err(HttpError::Timeout {
                origin: target.origin(),
                after: timeout,
            })
        })
}

async fn send_inner(target: &Target, call: Call<'_>) -> Result<Answer, HttpError> {
    let origin = target.origin();
    let exchange_error = |reason: String| HttpError::Exchange {
        origin: origin.clone(),
        reason,
    };
    let path = target.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = target.uri.authority().map_or("", |a| a.as_str());
    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(path)
        .header(HOST, authority)
        .header(CONNECTION, "close");
    for (name, value) in call.headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(call.body.clone()))
        .map_err(|e| exchange_error(e.to_string()))?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| HttpError::Connect {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
    if !target.tls {
        return exchange(TokioIo::new(tcp), request, &call)
            .await
            .map_err(exchange_error);
    }
    let tls_error = |reason: String| HttpError::Tls {
        origin: origin.clone(),
        reason,
    };
    let name = ServerName::try_from(target.host.clone()).map_err(|e| tls_error(e.to_string()))?;
    let stream = TlsConnector::from(client_config().map_err(tls_error)?)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(e.to_string()))?;
    exchange(TokioIo::new(stream), request, &call)
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

async fn exchange<I>(
    io: I,
    request: Request<Full<Bytes>>,
    call: &Call<'_>,
) -> Result<Answer, String>
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
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(response.into_body(), call.max_body)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if call.need_body => return Err(causes(&*e)),
        Err(_) => Bytes::new(),
    };
    Ok(Answer {
        status,
        location,
        body,
    })
}

/// An error with its causes: hyper's own messages are generic ("error reading a body").
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
                tracing::warn!(errors = ?found.errors, "no platform root certificates found: https requests will fail");
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
    use super::*;

    /// Answers every connection with `answer` (after reading the request's first bytes).
    async fn serve(answer: String) -> Target {
        let addr = crate::canned::serve(answer).await;
        Target::parse(&format!("http://{addr}/x?token=secret")).unwrap()
    }

    fn call(need_body: bool) -> Call<'static> {
        Call {
            method: Method::GET,
            headers: &[],
            body: Bytes::new(),
            max_body: 16,
            need_body,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_bound_fails_only_when_it_is_needed() {
        let long = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
            "a".repeat(100)
        );
        let target = serve(long).await;
        let err = send(&target, call(true)).await.unwrap_err();
        assert!(matches!(err, HttpError::Exchange { .. }), "{err}");
        assert!(!err.to_string().contains("secret"), "origin only: {err}");
        let answer = send(&target, call(false)).await.unwrap();
        assert_eq!((answer.status, answer.body.len()), (200, 0));

        let short = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into()).await;
        let answer = send(&short, call(true)).await.unwrap();
        assert_eq!(&answer.body[..], b"ok");
    }

    #[test]
    fn targets_are_http_or_https_with_a_host() {
        let t = Target::parse("https://[::1]/h").unwrap();
        assert_eq!(t.origin(), "https://[::1]:443");
        assert!(Target::parse("https://u:p@h.example/")
            .unwrap()
            .has_userinfo());
        for url in ["ftp://h.example/", "not a url", "https:///path"] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }
}
