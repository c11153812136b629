//! A real webhook receiver: a hyper HTTP/1 server on a loopback port, on its own runtime,
//! that records every request and answers each with one status. Dropping it closes the port.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Whether `X-Boltfleet-Signature-256` is `sha256=` and the hex HMAC-SHA256 of
    /// `"<X-Boltfleet-Timestamp>.<body>"` under `secret`, checked as a receiver would.
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some(hex_mac) = self
            .header("x-boltfleet-signature-256")
            .strip_prefix("sha256=")
        else {
            return false;
        };
        let Ok(given) = hex::decode(hex_mac) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
        mac.update(self.header("x-boltfleet-timestamp").as_bytes());
        mac.update(b".");
        mac.update(self.body.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Answers 200 on a free loopback port.
    pub fn start() -> Result<Self> {
        Self::start_on(0, 200)
    }

    /// Answers `status` to every request, on loopback `port` (0: a free one).
    pub fn start_on(port: u16, status: u16) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .with_context(|| format!("bind the receiver to port {port}"))?;
        let addr = listener.local_addr()?;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = StatusCode::from_u16(status)?;
        let log = received.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| record(request, log.clone(), status));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            received,
            _runtime: runtime,
        })
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in the order they came.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver log").clone()
    }
}

async fn record(
    request: Request<Incoming>,
    log: Arc<Mutex<Vec<Received>>>,
    status: StatusCode,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), value)
        })
        .collect();
    let body = match request.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    log.lock().expect("receiver log").push(Received {
        path,
        headers,
        body,
    });
    let mut answer = Response::new(Full::new(Bytes::from_static(b"thanks")));
    *answer.status_mut() = status;
    if status.is_redirection() {
        answer.headers_mut().insert(
            hyper::header::LOCATION,
            hyper::header::HeaderValue::from_static("http://127.0.0.1:1/elsewhere"),
        );
    }
    Ok(answer)
}

/// A loopback port nobody listens on now (bound, then closed).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
