//! The dashboard's files, embedded in the binary (no CDN, no build step), and the headers
//! every response carries: a strict content security policy (scripts and styles from this
//! server only, no inline script), no framing, no sniffing, no referrer, no caching.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Path, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../../assets/ui/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/app.js"),
    ),
    (
        "/pages.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/pages.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/ui/app.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../assets/ui/favicon.svg"),
    ),
    (
        "/chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/chart.umd.min.js"),
    ),
];

/// The policy: nothing but this server's own files and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded file at `path`, if any.
pub fn file(path: &str) -> Option<Response> {
    let (_, kind, bytes) = FILES.iter().find(|(p, _, _)| *p == path)?;
    Some(([(header::CONTENT_TYPE, *kind)], *bytes).into_response())
}

/// Adds the security headers to a response.
pub fn harden(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    set(headers, "cache-control", "no-store");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_load_only_embedded_scripts_and_no_inline_ones() {
        let index = std::str::from_utf8(FILES[0].2).unwrap();
        for tag in index.split("<script").skip(1) {
            let src = tag.split('>').next().unwrap();
            assert!(
                src.contains("src=\"/"),
                "an inline or foreign script: {tag}"
            );
        }
        assert!(
            !index.contains("http://") && !index.contains("https://"),
            "no CDN"
        );
        for (path, _, bytes) in FILES {
            assert!(!bytes.is_empty(), "{path}");
            if path.ends_with(".js") && !path.starts_with("/chart") {
                let js = std::str::from_utf8(bytes).unwrap();
                assert!(!js.contains("innerHTML"), "{path} inserts HTML");
                assert!(!js.contains("insertAdjacentHTML"), "{path} inserts HTML");
                assert!(!js.contains("document.write"), "{path} writes HTML");
            }
        }
        assert!(file("/nope").is_none());
    }
}
