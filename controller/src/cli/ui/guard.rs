//! The dashboard's door: requests for our own address only (`Host`), from our own origin only
//! (`Origin`, `Sec-Fetch-Site`), with a session that only the per-launch token opens, and a
//! CSRF token on every state-changing request. Every refusal is a 403 with its reason.
//!
//! The token printed at launch (`/?token=...`) is exchanged once per browser for a session
//! cookie (HttpOnly, SameSite=Strict) and removed from the address bar by a redirect, as
//! Jupyter does. Cookies are not told apart by port, and a page on another port of the same
//! host is "same-site": the Origin check and the CSRF token are what stop such a page.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::http::{header, HeaderMap, Method};

/// The header a state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Sessions kept at most; the oldest goes first (each browser that opened the URL holds one).
const MAX_SESSIONS: usize = 64;

/// A browser session opened with the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it, in this session.
    Pass(Session),
    /// The token was right: set this session's cookie and send the browser to `/`.
    Login { cookie: String },
    /// 403, with this reason.
    Refuse(String),
}

/// The secrets of one launch and the sessions opened with them.
pub struct Guard {
    token: String,
    /// A second token that opens one session only: the one `--open` passes to the browser
    /// on a command line others can read.
    launch: Mutex<Option<String>>,
    cookie_name: String,
    /// `Host` values this server answers to.
    hosts: Vec<String>,
    sessions: Mutex<Vec<(String, Session)>>,
}

/// 32 random bytes as hex.
pub fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Whether two secrets are equal, in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Guard {
    /// The guard of a server listening on `addr`, with a fresh token.
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_token(addr, secret())
    }

    pub fn with_token(addr: SocketAddr, token: String) -> Self {
        let port = addr.port();
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() {
            for name in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.push(format!("{name}:{port}"));
            }
        }
        hosts.dedup();
        Self {
            token,
            launch: Mutex::new(Some(secret())),
            // Cookies are shared by every port of a host: one name per port, so that two
            // dashboards (or another local app) do not overwrite each other's.
            cookie_name: format!("boltfleet_ui_{port}"),
            hosts,
            sessions: Mutex::new(Vec::new()),
        }
    }

    /// The address to open: our own, with the token.
    pub fn login_url(&self) -> String {
        format!("http://{}/?token={}", self.hosts[0], self.token)
    }

    /// The address `--open` hands the browser: its token opens one session, then no more.
    pub fn launch_url(&self) -> String {
        let launch = self.launch.lock().unwrap_or_else(|p| p.into_inner());
        format!(
            "http://{}/?token={}",
            self.hosts[0],
            launch.as_deref().unwrap_or("used")
        )
    }

    /// Whether `given` is a token that opens a session (using up the launch token).
    fn token_opens(&self, given: &str) -> bool {
        if same_secret(given, &self.token) {
            return true;
        }
        let mut launch = self.launch.lock().unwrap_or_else(|p| p.into_inner());
        if launch.as_deref().is_some_and(|t| same_secret(given, t)) {
            *launch = None;
            return true;
        }
        false
    }

    /// The `Set-Cookie` value of a new session.
    pub fn set_cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie_name
        )
    }

    /// Decides on one request from its method, path, query and headers.
    pub fn decide(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Decision {
        match self.check(method, path, query, headers) {
            Ok(decision) => decision,
            Err(reason) => Decision::Refuse(reason),
        }
    }

    fn check(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Decision, String> {
        let host = text(headers, header::HOST.as_str()).ok_or("the request has no Host header")?;
        if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            // DNS rebinding: a foreign name that resolves to us.
            return Err(format!(
                "Host {host:?} is not this dashboard's address ({})",
                self.hosts[0]
            ));
        }
        let own_origin = format!("http://{host}");
        let origin = text(headers, header::ORIGIN.as_str());
        if let Some(origin) = origin {
            if !origin.eq_ignore_ascii_case(&own_origin) {
                return Err(format!(
                    "cross-origin request refused: Origin {origin:?} is not {own_origin}"
                ));
            }
        }
        if path == "/" && method == Method::GET {
            if let Some(given) = query.and_then(token_of) {
                // The printed link may be opened from anywhere (a terminal, a chat): the token
                // is the proof, whatever the referring site.
                return if self.token_opens(&given) {
                    Ok(Decision::Login {
                        cookie: self.open_session(),
                    })
                } else {
                    Err("wrong token: open the address `boltfleet ui` printed".into())
                };
            }
        }
        if let Some(site) = text(headers, "sec-fetch-site") {
            if site != "same-origin" && site != "none" {
                return Err(format!(
                    "{site} request refused: only this dashboard's own pages may call it"
                ));
            }
        }
        let changes_state = method != Method::GET && method != Method::HEAD;
        if changes_state && origin.is_none() {
            return Err("a state-changing request needs an Origin header".into());
        }
        let session = self
            .session_of(headers)
            .ok_or("no session: open the address `boltfleet ui` printed (its ?token= opens one)")?;
        if changes_state {
            let given = text(headers, CSRF_HEADER).unwrap_or_default();
            if !same_secret(given, &session.csrf) {
                return Err("missing or wrong CSRF token".into());
            }
            let json = text(headers, header::CONTENT_TYPE.as_str())
                .is_some_and(|t| t.split(';').next() == Some("application/json"));
            if !json {
                return Err("a state-changing request sends application/json".into());
            }
        }
        Ok(Decision::Pass(session))
    }

    /// A new session; returns its id (the cookie's value).
    fn open_session(&self) -> String {
        let id = secret();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push((id.clone(), Session { csrf: secret() }));
        id
    }

    fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        let cookies: HashMap<&str, &str> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .collect();
        let id = cookies.get(self.cookie_name.as_str())?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .iter()
            .find(|(known, _)| same_secret(known, id))
            .map(|(_, s)| s.clone())
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `token` parameter of a query string.
fn token_of(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "t0ken";

    fn guard() -> Guard {
        Guard::with_token("127.0.0.1:8080".parse().unwrap(), TOKEN.into())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// Logs in and returns the cookie header and the session.
    fn login(g: &Guard) -> (String, Session) {
        let Decision::Login { cookie } = g.decide(
            &Method::GET,
            "/",
            Some(&format!("token={TOKEN}")),
            &headers(&[("host", "127.0.0.1:8080")]),
        ) else {
            panic!("the token opens a session");
        };
        let cookie = format!("other=1; boltfleet_ui_8080={cookie}");
        let pass = g.decide(
            &Method::GET,
            "/api/session",
            None,
            &headers(&[("host", "localhost:8080"), ("cookie", &cookie)]),
        );
        let Decision::Pass(session) = pass else {
            panic!("the cookie is the session: {pass:?}");
        };
        (cookie, session)
    }

    fn refused(d: Decision, words: &str) {
        match d {
            Decision::Refuse(reason) => assert!(reason.contains(words), "{reason}"),
            other => panic!("{other:?} is no refusal ({words})"),
        }
    }

    #[test]
    fn only_the_token_opens_a_session() {
        let g = guard();
        let host = headers(&[("host", "127.0.0.1:8080")]);
        refused(g.decide(&Method::GET, "/", None, &host), "no session");
        refused(
            g.decide(&Method::GET, "/", Some("token=nope"), &host),
            "wrong token",
        );
        refused(
            g.decide(&Method::GET, "/api/fleet", Some("token=t0ken"), &host),
            "no session",
        );
        let forged = headers(&[
            ("host", "127.0.0.1:8080"),
            ("cookie", "boltfleet_ui_8080=abc"),
        ]);
        refused(g.decide(&Method::GET, "/", None, &forged), "no session");
        login(&g);
        assert!(g.login_url().ends_with("/?token=t0ken"));
        let launch = g.launch_url();
        let query = launch.split_once('?').unwrap().1;
        let open = || g.decide(&Method::GET, "/", Some(query), &host);
        assert!(matches!(open(), Decision::Login { .. }));
        refused(open(), "wrong token");
        assert!(g.set_cookie("x").contains("HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn a_foreign_host_or_origin_is_refused_even_with_a_session() {
        let g = guard();
        let (cookie, _) = login(&g);
        let rebinding = headers(&[("host", "evil.example:8080"), ("cookie", &cookie)]);
        refused(
            g.decide(&Method::GET, "/", None, &rebinding),
            "not this dashboard",
        );
        let other_port = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9999"),
            ("cookie", &cookie),
        ]);
        refused(
            g.decide(&Method::GET, "/api/fleet", None, &other_port),
            "cross-origin",
        );
        let same_site = headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-site"),
            ("cookie", &cookie),
        ]);
        refused(
            g.decide(&Method::GET, "/api/fleet", None, &same_site),
            "same-site",
        );
    }

    #[test]
    fn a_post_needs_origin_session_csrf_and_json() {
        let g = guard();
        let (cookie, session) = login(&g);
        let post = |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("host", "127.0.0.1:8080"), ("cookie", cookie.as_str())];
            pairs.extend_from_slice(extra);
            g.decide(
                &Method::POST,
                "/api/rollouts/r1/pause",
                None,
                &headers(&pairs),
            )
        };
        let origin = ("origin", "http://127.0.0.1:8080");
        let csrf = ("x-csrf-token", session.csrf.as_str());
        let json = ("content-type", "application/json");
        refused(post(&[csrf, json]), "needs an Origin");
        refused(post(&[origin, json]), "CSRF");
        refused(post(&[origin, ("x-csrf-token", "0000"), json]), "CSRF");
        refused(post(&[origin, csrf]), "application/json");
        refused(
            post(&[origin, csrf, ("content-type", "text/plain")]),
            "application/json",
        );
        assert_eq!(post(&[origin, csrf, json]), Decision::Pass(session));
    }
}
