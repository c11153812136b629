//! The `/metrics` endpoint of `[metrics] listen`: plain HTTP/1.1 on an address of the
//! operator's choosing, `GET /metrics` only, the OpenMetrics text a `render` function makes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// The OpenMetrics text format's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A scrape that takes longer than this is cut (a stuck client must not hold a connection).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);

/// `[metrics]` of a config file: off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` answers, e.g. `127.0.0.1:9464` (plain HTTP: keep it on loopback
    /// or a monitoring network).
    pub listen: Option<SocketAddr>,
}

/// Makes the exposition text at each scrape; runs on the blocking pool.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("metrics: cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` (so a taken port fails at start, with its address).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, render: Render, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics listening");
    }
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, render.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(SCRAPE_TIMEOUT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => debug!(%peer, error = %err, "metrics connection ended"),
                Err(_) => debug!(%peer, "metrics connection cut: too slow"),
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    render: Render,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String, kind: &str| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = kind.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "only /metrics here\n".into(),
            "text/plain",
        );
    }
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".into(),
            "text/plain",
        );
    }
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(text) => reply(StatusCode::OK, text, CONTENT_TYPE),
        Err(err) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics failed: {err}\n"),
            "text/plain",
        ),
    }
}
