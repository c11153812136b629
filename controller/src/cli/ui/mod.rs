//! `boltfleet ui`: the web dashboard, served on the operator's own machine (loopback by
//! default) and talking to the controller's admin service with the operator's certificate,
//! like the rest of the CLI: the controller's roles and scopes decide, no new login exists.
//!
//! * [`guard`]: Host, Origin, token, session cookie and CSRF checks on every request;
//! * [`api`]: the JSON API the pages call; [`live`]: a rollout's changes as server-sent events;
//! * [`snapshot`] and [`fleet`]: the fleet read once per few seconds, queried in memory;
//! * [`assets`]: the embedded HTML, CSS, JavaScript and Chart.js.

mod api;
mod assets;
mod fleet;
mod guard;
mod live;
mod snapshot;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use boltfleet_common::proto::WhoAmIRequest;
use clap::Args;

use super::client::{call, connect, AdminClient};
use super::config::Connection;
use super::error::CliError;
use guard::{Decision, Guard};

/// `boltfleet ui` arguments.
#[derive(Debug, Clone, Args)]
pub struct UiArgs {
    /// Address to serve the dashboard on: loopback unless you mean otherwise (port 0: any free)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Open the dashboard in the desktop's browser (xdg-open, or open on macOS)
    #[arg(long)]
    pub open: bool,
}

/// An address the Host check can know: a given IP, not "any".
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not IP:PORT (e.g. 127.0.0.1:8080)"))?;
    if addr.ip().is_unspecified() {
        return Err(format!(
            "{text}: give the address to serve on (e.g. 127.0.0.1:8080), not \"any\": requests are checked against it"
        ));
    }
    Ok(addr)
}

/// What every handler shares.
pub struct Ui {
    admin: AdminClient,
    guard: Guard,
    fleet: Arc<snapshot::FleetCache>,
    /// The controller's address, for the page's header.
    controller: String,
}

/// Serves the dashboard until Ctrl-C or SIGTERM. Prints its address (with the launch token)
/// as the only line on stdout.
pub async fn run(conn: &Connection, args: UiArgs) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    // A certificate the controller refuses fails here, not in the browser.
    let me = call("ask who we are", admin.who_am_i(WhoAmIRequest {})).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Connect(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Connect(format!("cannot listen on {}: {e}", args.listen)))?;
    let ui = Arc::new(Ui {
        admin,
        guard: Guard::new(addr),
        fleet: Arc::default(),
        controller: conn.controller.clone(),
    });
    if !addr.ip().is_loopback() {
        eprintln!("boltfleet ui: warning: serving on {addr}, not loopback: whoever reaches it with the token acts as {}", me.name);
    }
    super::write_stdout(&format!("{}\n", ui.guard.login_url()))?;
    let _ = std::io::stdout().flush();
    eprintln!(
        "boltfleet ui: the dashboard of {} as {} ({}); open the address above; Ctrl-C stops it",
        conn.controller, me.name, me.role
    );
    // Read the fleet while the operator opens the page: at 50,000 hosts the first read takes
    // seconds, and the first page shown should not wait for it.
    let warm = ui.clone();
    tokio::spawn(async move {
        if let Err(err) = warm.fleet.get(&warm.admin).await {
            tracing::warn!(error = %err, "fleet snapshot not read at launch");
        }
    });
    if args.open {
        open_browser(&ui.guard.launch_url());
    }
    let app = router(ui);
    tokio::select! {
        served = axum::serve(listener, app) => served.map_err(CliError::Output),
        () = stop_signal() => Ok(()),
    }
}

/// Every route, behind the guard.
fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/api/session", get(api::session))
        .route("/api/fleet", get(api::fleet))
        .route("/api/hosts", get(api::hosts))
        .route("/api/hosts/{id}", get(api::host))
        .route("/api/hosts/{id}/jobs", get(api::host_jobs))
        .route("/api/rollouts", get(api::rollouts))
        .route("/api/rollouts/{id}", get(api::rollout))
        .route("/api/rollouts/{id}/events", get(api::rollout_events))
        .route("/api/rollouts/{id}/{action}", post(api::rollout_action))
        .route("/api/plan", post(api::plan))
        .fallback(static_file)
        .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

/// The embedded file at the request's path (`/` is the page itself), or 404.
async fn static_file(method: Method, request: Request) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "GET only").into_response();
    }
    assets::file(request.uri().path())
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "no such page").into_response())
}

/// The guard in front of every route, and the security headers on every response.
async fn guard(State(ui): State<Arc<Ui>>, mut request: Request, next: Next) -> Response {
    let decision = ui.guard.decide(
        request.method(),
        request.uri().path(),
        request.uri().query(),
        request.headers(),
    );
    let mut response = match decision {
        Decision::Pass(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Decision::Login { cookie } => {
            // The token leaves the address bar: the browser goes on to `/` with its cookie.
            let headers = [
                (header::LOCATION, "/".to_string()),
                (header::SET_COOKIE, ui.guard.set_cookie(&cookie)),
            ];
            (StatusCode::SEE_OTHER, headers).into_response()
        }
        Decision::Refuse(reason) => {
            tracing::warn!(method = %request.method(), path = ?request.uri().path(), reason = ?reason, "request refused");
            let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
            (StatusCode::FORBIDDEN, plain, format!("{reason}\n")).into_response()
        }
    };
    assets::harden(response.headers_mut());
    response
}

/// Opens `url` in the desktop's browser; a failure is a warning (the printed address works).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(err) = spawned {
        eprintln!("boltfleet ui: cannot start {opener} ({err}): open the address above yourself");
    }
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_is_a_given_ip() {
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_listen("0.0.0.0:8080")
            .unwrap_err()
            .contains("not \"any\""));
        assert!(parse_listen("[::]:8080").is_err());
        assert!(parse_listen("localhost:8080")
            .unwrap_err()
            .contains("IP:PORT"));
    }
}
