//! The webhook sender: a task beside the scheduler that sends due deliveries from the outbox.
//!
//! Level-triggered like the scheduler: each pass reads what is due from the store (on the
//! blocking pool), starts an attempt for each (at most [`SenderConfig::per_hook`] in flight per
//! webhook, [`SenderConfig::total`] in all), and sleeps until the next one is due, an event is
//! queued, or an attempt ends. Attempts run as their own tasks, so one slow or dead receiver
//! holds only its own slots; nothing here is awaited by the scheduler or by the calls that
//! queue events. Each attempt's outcome is stored before its slot is freed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::post::{post, Target};
use super::sign;
use crate::app::webhook_outbox::{Attempt, Due};
use crate::app::App;
use crate::leadership::Leadership;
use crate::state::DeliveryKey;

/// The longest the sender sleeps between passes.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often done deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How the sender sends.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// One attempt, connection to answer.
    pub timeout: Duration,
    /// Attempts in flight to one webhook at once.
    pub per_hook: usize,
    /// Attempts in flight at once.
    pub total: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            per_hook: 4,
            total: 64,
        }
    }
}

/// Runs [`run_with`] the default config.
pub async fn run(app: Arc<App>, stop: watch::Receiver<bool>, leadership: Leadership) {
    run_with(app, stop, SenderConfig::default(), leadership).await
}

/// Sends due deliveries until `stop` turns true or its sender is dropped; then waits for the
/// attempts in flight (each bounded by the timeout), so that their outcome is stored.
///
/// With several controllers, only the one running the scheduler sends: the others wait for
/// leadership (one sender over the shared outbox, so a receiver does not get each event once
/// per controller).
pub async fn run_with(
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    config: SenderConfig,
    mut leadership: Leadership,
) {
    info!("webhook sender started");
    let in_flight: Arc<Mutex<HashSet<DeliveryKey>>> = Arc::default();
    let mut attempts = JoinSet::new();
    let mut pruned_at: Option<Instant> = None;
    while !*stop.borrow() {
        if leadership.current().is_none() {
            tokio::select! {
                _ = stop.changed() => {}
                () = leadership.changed() => {}
            }
            continue;
        }
        while attempts.try_join_next().is_some() {}
        let next = start_due(&app, &config, &in_flight, &mut attempts).await;
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            prune(&app).await;
        }
        let wait = next
            .map(|at| Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default())
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = stop.changed() => {}
            _ = app.webhooks_woken() => {}
            () = leadership.changed() => {}
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if stop.has_changed().is_err() {
            break;
        }
    }
    while attempts.join_next().await.is_some() {}
    info!("webhook sender stopped");
}

/// Starts an attempt for each due delivery there is room for; returns when the next one
/// not due yet is.
async fn start_due(
    app: &Arc<App>,
    config: &SenderConfig,
    in_flight: &Arc<Mutex<HashSet<DeliveryKey>>>,
    attempts: &mut JoinSet<()>,
) -> Option<Timestamp> {
    let room = config.total.saturating_sub(attempts.len());
    if room == 0 {
        return None;
    }
    let skip = lock(in_flight).clone();
    let worker = app.clone();
    let per_hook = config.per_hook;
    let found = tokio::task::spawn_blocking(move || {
        worker.due_deliveries(Timestamp::now(), &skip, per_hook)
    })
    .await;
    let (due, next) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => {
            warn!(error = %err, "webhook outbox not read; retrying");
            return None;
        }
        Err(err) => {
            warn!(error = %err, "webhook outbox read failed; retrying");
            return None;
        }
    };
    for due in due.into_iter().take(room) {
        lock(in_flight).insert(due.key.clone());
        let attempt = send(app.clone(), due, config.timeout, in_flight.clone());
        attempts.spawn(attempt);
    }
    next
}

/// One attempt: sign, POST, store the outcome, free the slot.
async fn send(
    app: Arc<App>,
    due: Due,
    timeout: Duration,
    in_flight: Arc<Mutex<HashSet<DeliveryKey>>>,
) {
    let Due {
        key,
        delivery,
        hook,
    } = due;
    let attempt = match Target::parse(&hook.url) {
        Ok(target) => {
            let at = Timestamp::now().as_second();
            let body = &delivery.body;
            let headers = sign::headers(
                &hook.secret,
                &delivery.event_type,
                &delivery.event_id,
                at,
                body,
            );
            match post(&target, &headers, body, timeout).await {
                Ok(status) => Attempt::Answered(status),
                Err(err) => Attempt::NoAnswer(err.to_string()),
            }
        }
        Err(err) => Attempt::NoAnswer(format!("bad webhook URL: {err}")),
    };
    debug!(hook = %key.hook, event = %delivery.event_id, ?attempt, "webhook attempt");
    let jitter: f64 = rand::random();
    let stored = key.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        app.record_attempt(&stored, delivery, attempt, Timestamp::now(), jitter)
    })
    .await;
    match recorded {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            warn!(hook = %key.hook, error = %err, "webhook attempt not recorded; sent again")
        }
        Err(err) => {
            warn!(hook = %key.hook, error = %err, "webhook attempt not recorded; sent again")
        }
    }
    lock(&in_flight).remove(&key);
}

async fn prune(app: &Arc<App>) {
    let worker = app.clone();
    match tokio::task::spawn_blocking(move || worker.prune_deliveries(Timestamp::now())).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => debug!(pruned = n, "webhook deliveries pruned"),
        Ok(Err(err)) => warn!(error = %err, "webhook deliveries not pruned"),
        Err(err) => warn!(error = %err, "webhook pruning failed"),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::NewWebhook;
    use crate::auth::Caller;
    use crate::state::DeliveryState;
    use crate::webhook::post::tests::serve;

    const SECRET: &str = "a-secret-of-some-length";

    fn add(app: &App, url: &str) -> String {
        let new = NewWebhook {
            url: url.into(),
            events: vec!["host.offline".into()],
            tenant: String::new(),
            secret: SECRET.into(),
        };
        app.add_webhook(&Caller::admin("alice"), new, Timestamp::now())
            .unwrap()
    }

    fn state_of(app: &App, hook: &str, event: &str) -> (DeliveryState, u32) {
        let admin = Caller::admin("alice");
        let d = app
            .webhook_deliveries(&admin, hook, 0, event)
            .unwrap()
            .remove(0);
        (d.state, d.attempts)
    }

    /// Polls `check` every 10 ms until it holds, within 10 s.
    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn header<'a>(request: &'a str, name: &str) -> &'a str {
        request
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {request}"))
    }

    #[tokio::test]
    async fn a_queued_event_is_posted_signed_and_marked_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::app::tests::app(dir.path());
        let (url, mut asked) = serve("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let hook = add(&app, &format!("{url}/hook"));
        let (stop_tx, stop) = watch::channel(false);
        let sender = tokio::spawn(run(app.clone(), stop, Leadership::Sole));
        let event = app
            .test_webhook(&Caller::admin("alice"), &hook, Timestamp::now())
            .unwrap();

        let request = tokio::time::timeout(Duration::from_secs(10), asked.recv())
            .await
            .expect("posted")
            .unwrap();
        let body = request.split_once("\r\n\r\n").unwrap().1;
        let at: i64 = header(&request, "x-boltfleet-timestamp").parse().unwrap();
        assert_eq!(header(&request, "x-boltfleet-event"), "test");
        assert_eq!(header(&request, "x-boltfleet-delivery"), event);
        assert_eq!(
            header(&request, "x-boltfleet-signature-256"),
            sign::signature(SECRET, at, body)
        );
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["id"], event.as_str());
        eventually("delivered", || {
            state_of(&app, &hook, &event) == (DeliveryState::Delivered, 1)
        })
        .await;
        stop_tx.send_replace(true);
        sender.await.unwrap();
        assert!(asked.try_recv().is_err(), "sent once");
    }

    #[tokio::test]
    async fn a_silent_receiver_does_not_hold_up_another_hook() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::app::tests::app(dir.path());
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stuck = add(&app, &format!("http://{}/", silent.local_addr().unwrap()));
        let (url, mut asked) = serve("HTTP/1.1 204 No Content\r\n\r\n").await;
        let quick = add(&app, &url);
        let admin = Caller::admin("alice");
        let stuck_event = app.test_webhook(&admin, &stuck, Timestamp::now()).unwrap();
        let quick_event = app.test_webhook(&admin, &quick, Timestamp::now()).unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let config = SenderConfig {
            timeout: Duration::from_secs(3),
            ..SenderConfig::default()
        };
        let sender = tokio::spawn(run_with(app.clone(), stop, config, Leadership::Sole));
        asked.recv().await.unwrap();
        eventually("the quick hook's delivery", || {
            state_of(&app, &quick, &quick_event).0 == DeliveryState::Delivered
        })
        .await;
        assert_eq!(
            state_of(&app, &stuck, &stuck_event),
            (DeliveryState::Pending, 0),
            "the silent receiver's attempt is still waiting for an answer"
        );
        eventually("the silent receiver's attempt to time out", || {
            state_of(&app, &stuck, &stuck_event).1 == 1
        })
        .await;
        let admin = Caller::admin("alice");
        let d = app
            .webhook_deliveries(&admin, &stuck, 0, "")
            .unwrap()
            .remove(0);
        assert!(d.last_error.unwrap().contains("did not answer within 3s"));
        stop_tx.send_replace(true);
        sender.await.unwrap();
    }
}
