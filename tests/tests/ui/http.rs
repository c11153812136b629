//! Plain HTTP/1.1 to the dashboard, for requests a browser would not send (no cookie, a
//! foreign Host, a missing CSRF token).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{ensure, Result};

pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// One HTTP/1.1 request to `authority` with `headers` (lines), on a fresh connection.
pub fn http(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> Result<Answer> {
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|h| h.to_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}

/// Fails unless the answer is a 403 whose reason holds `words`.
pub fn refused(answer: &Answer, words: &str) -> Result<()> {
    ensure!(
        answer.status == 403 && answer.body.contains(words),
        "expected a 403 about {words:?}, got {} {}",
        answer.status,
        answer.body
    );
    Ok(())
}
