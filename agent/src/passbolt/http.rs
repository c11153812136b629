//! A GET of passbolt's `/healthcheck/status.json` with the shared HTTP client
//! ([`boltfleet_common::http`]: no redirect followed, one deadline, a bounded body).

use std::time::Duration;

use boltfleet_common::http::{self, Answer, BadUrl, Call, Target};
use hyper::Method;

pub use boltfleet_common::http::HttpError;

/// The most of a body that is read; status answers are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// A URL that could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: BadUrl },
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// GETs `url` (`http://` or `https://`, no redirects followed) within `timeout`.
pub async fn get(url: &str, timeout: Duration) -> Result<Answer, GetError> {
    let target = Target::parse(url).map_err(|reason| GetError::BadUrl {
        url: url.to_string(),
        reason,
    })?;
    let headers = [
        (
            "user-agent",
            concat!("boltfleet-agent/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        ("accept", "application/json".to_string()),
    ];
    let call = Call {
        method: Method::GET,
        headers: &headers,
        body: Default::default(),
        max_body: MAX_BODY,
        need_body: true,
        timeout,
    };
    Ok(http::send(&target, call).await?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::net::TcpListener;

    use super::*;

    /// Serves one canned raw HTTP answer per connection; returns the base URL.
    async fn serve(answer: &'static str) -> String {
        format!("http://{}", boltfleet_common::canned::serve(answer).await)
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
        assert_eq!(&answer.body[..], b"{\"body\":\"OK\"}   ");

        let url =
            serve("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops").await;
        let answer = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!((answer.status, &answer.body[..]), (500, &b"oops"[..]));

        let url = serve("HTTP/1.1 301 Moved Permanently\r\nLocation: https://x.example/h\r\nContent-Length: 0\r\n\r\n").await;
        let answer = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.location.as_deref(), Some("https://x.example/h"));
    }

    #[tokio::test]
    async fn failures_are_errors() {
        let err = get("ftp://localhost/x", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, GetError::BadUrl { .. }), "{err}");
        let err = get("not a url", Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, GetError::BadUrl { .. }), "{err}");

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
        assert!(
            matches!(err, GetError::Http(HttpError::Connect { .. })),
            "{err}"
        );

        // Accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let err = get(&url, Duration::from_millis(300)).await.unwrap_err();
        assert!(
            matches!(err, GetError::Http(HttpError::Timeout { .. })),
            "{err}"
        );

        let url = serve("garbage\r\n\r\n").await;
        let err = get(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(err, GetError::Http(HttpError::Exchange { .. })),
            "{err}"
        );
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
        assert!(
            matches!(err, GetError::Http(HttpError::Tls { .. })),
            "{err}"
        );
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    }
}
