//! A loopback HTTP server that answers every connection with the same raw bytes, for the
//! tests of the HTTP clients (the webhook sender's and the agent's passbolt probe).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `answer` (a whole raw HTTP response) to every connection, after reading the
/// request's first bytes; returns the address it listens on.
pub async fn serve(answer: impl Into<String>) -> SocketAddr {
    let answer = answer.into();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port for the canned server");
    let addr = listener.local_addr().expect("the canned server's address");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(answer.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    addr
}
