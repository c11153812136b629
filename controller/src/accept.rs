//! The listener: accepts TCP connections and runs their TLS handshakes, at most
//! `max_handshakes` at once. When a whole fleet reconnects (a controller restart), the rest wait
//! in the accept backlog instead of all handshaking at once, each slowed down until many reach
//! the handshake timeout half done and start over.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

/// Connections whose handshake succeeded, for the gRPC server.
pub type Incoming = ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>;

/// Accepts on `listener` until the returned stream is dropped (the server stopped).
pub fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    max_handshakes: usize,
    handshake_timeout: Duration,
) -> Incoming {
    let (tx, rx) = mpsc::channel(max_handshakes.max(1));
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(max_handshakes.max(1)));
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
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await;
                drop(permit);
                match handshake {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(err)) => debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
