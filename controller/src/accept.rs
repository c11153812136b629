//! The listener: accepts TCP connections and runs their TLS handshakes, at most
//! `max_handshakes` at once. When a whole fleet reconnects (a controller restart), the rest wait
//! in the accept backlog instead of all handshaking at once, each slowed down until many reach
//! the handshake timeout half done and start over.
//!
//! One source address may hold at most `max_connections_per_address` connections and
//! `max_handshakes_per_address` handshakes in progress; beyond that its connections are closed
//! at once, so that one address cannot take the shared handshake slots from everyone else. A
//! connection that does not start its handshake at once gives its slot back while it is silent
//! (see [`PROMPT_HELLO`]). A connection without a client certificate (enrollment) is closed
//! `anonymous_connection_timeout` after its handshake.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::limits::Limits;

/// Connections whose handshake succeeded, for the gRPC server.
pub type Incoming = ReceiverStream<Result<Conn, io::Error>>;

/// How often refused connections of one address are logged at most.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(60);

/// What the listener allows, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    pub per_address_connections: usize,
    pub per_address_handshakes: usize,
    pub anonymous_timeout: Duration,
}

impl From<&Limits> for AcceptLimits {
    fn from(l: &Limits) -> Self {
        Self {
            max_handshakes: l.max_handshakes,
            handshake_timeout: l.handshake_timeout,
            per_address_connections: l.max_connections_per_address,
            per_address_handshakes: l.max_handshakes_per_address,
            anonymous_timeout: l.anonymous_connection_timeout,
        }
    }
}

#[derive(Debug, Default)]
struct PerAddress {
    connections: usize,
    handshakes: usize,
    refused: u64,
    logged_at: Option<Instant>,
}

/// Connections and handshakes per source address.
#[derive(Debug, Default)]
struct Addresses {
    by_ip: Mutex<HashMap<IpAddr, PerAddress>>,
    /// Counts every refused connection (the metrics' `connections` refusals).
    refused: Counter,
}

impl Addresses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, PerAddress>> {
        self.by_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip` in handshake; `None` (and a log line now and then)
    /// when the address is over a limit.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &AcceptLimits) -> Option<AddrGuard> {
        let mut all = self.lock();
        let entry = all.entry(ip).or_default();
        if entry.connections >= limits.per_address_connections
            || entry.handshakes >= limits.per_address_handshakes
        {
            entry.refused += 1;
            self.refused.inc();
            let now = Instant::now();
            if entry
                .logged_at
                .is_none_or(|at| now.duration_since(at) >= REFUSED_LOG_EVERY)
            {
                entry.logged_at = Some(now);
                warn!(
                    peer = %ip,
                    refused = std::mem::take(&mut entry.refused),
                    connections = entry.connections,
                    handshakes = entry.handshakes,
                    "connections refused: over the per-address limit"
                );
            }
            return None;
        }
        entry.connections += 1;
        entry.handshakes += 1;
        Some(AddrGuard {
            addresses: self.clone(),
            ip,
            handshaking: true,
        })
    }
}

/// One connection's share of its address's counts, given back when dropped.
#[derive(Debug)]
struct AddrGuard {
    addresses: Arc<Addresses>,
    ip: IpAddr,
    handshaking: bool,
}

impl AddrGuard {
    fn handshake_done(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            if let Some(e) = self.addresses.lock().get_mut(&self.ip) {
                e.handshakes = e.handshakes.saturating_sub(1);
            }
        }
    }
}

impl Drop for AddrGuard {
    fn drop(&mut self) {
        let mut all = self.addresses.lock();
        if let Some(e) = all.get_mut(&self.ip) {
            e.connections = e.connections.saturating_sub(1);
            if self.handshaking {
                e.handshakes = e.handshakes.saturating_sub(1);
            }
            if e.connections == 0 && e.refused == 0 {
                all.remove(&self.ip);
            }
        }
    }
}

/// An accepted TLS connection: counted against its address while open; without a client
/// certificate, ended at its deadline.
pub struct Conn {
    inner: TlsStream<TcpStream>,
    _guard: AddrGuard,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Connected for Conn {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "a connection without a client certificate is closed after its deadline",
                )));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client sends its TLS hello at once; one that has not within this long gives its
/// handshake slot back while it waits (and queues for one again when it speaks), so that idle
/// connections from many addresses cannot hold the `max_handshakes` slots.
const PROMPT_HELLO: Duration = Duration::from_millis(250);

/// The TLS handshake of `tcp`, holding a handshake slot only while the client is talking.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    permit: tokio::sync::OwnedSemaphorePermit,
    permits: &Arc<Semaphore>,
) -> io::Result<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let permit = match tokio::time::timeout(PROMPT_HELLO, tcp.peek(&mut first)).await {
        Ok(_) => permit,
        Err(_) => {
            drop(permit);
            tcp.peek(&mut first).await?;
            permits.clone().acquire_owned().await.expect("never closed")
        }
    };
    let stream = acceptor.accept(tcp).await;
    drop(permit);
    stream
}

/// Accepts on `listener` until the returned stream is dropped (the server stopped).
pub fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: AcceptLimits,
    refused: Counter,
) -> Incoming {
    let max_handshakes = limits.max_handshakes.max(1);
    let (tx, rx) = mpsc::channel(max_handshakes);
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(max_handshakes));
    let addresses = Arc::new(Addresses {
        refused,
        ..Addresses::default()
    });
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                () = tx.closed() => break,
            };
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, mostly: let some connections go first.
                        warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => break,
            };
            let Some(mut guard) = addresses.admit(peer.ip(), &limits) else {
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(
                    limits.handshake_timeout,
                    handshake(acceptor, tcp, permit, &permits),
                )
                .await;
                guard.handshake_done();
                match handshake {
                    Ok(Ok(stream)) => {
                        let anonymous = stream.get_ref().1.peer_certificates().is_none();
                        let deadline = anonymous
                            .then(|| Box::pin(tokio::time::sleep(limits.anonymous_timeout)));
                        let conn = Conn {
                            inner: stream,
                            _guard: guard,
                            deadline,
                        };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(err)) => debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: usize, handshakes: usize) -> AcceptLimits {
        AcceptLimits {
            max_handshakes: 128,
            handshake_timeout: Duration::from_secs(10),
            per_address_connections: connections,
            per_address_handshakes: handshakes,
            anonymous_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn one_address_is_held_to_its_handshakes_and_connections() {
        let addresses = Arc::new(Addresses::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let l = limits(3, 2);
        let mut first = addresses.admit(a, &l).unwrap();
        let _second = addresses.admit(a, &l).unwrap();
        assert!(addresses.admit(a, &l).is_none(), "two handshakes at once");
        assert!(addresses.admit(b, &l).is_some(), "addresses apart");
        first.handshake_done();
        let third = addresses.admit(a, &l).unwrap();
        assert!(addresses.admit(a, &l).is_none(), "three connections");
        drop(third);
        assert!(addresses.admit(a, &l).is_some(), "given back when closed");
    }
}
