//! `boltfleet webhook add|list|remove|test|deliveries`: signed notifications of fleet events
//! (admins).

use std::path::Path;
use std::time::{Duration, Instant};

use boltfleet_common::proto::{
    AddWebhookRequest, ListWebhooksRequest, RemoveWebhookRequest, TestWebhookRequest,
    WebhookDeliveriesRequest, WebhookDelivery,
};
use serde_json::{json, Value};

use super::args::Format;
use super::client::{call, connect, AdminClient};
use super::config::Connection;
use super::error::CliError;
use super::render::table;
use super::rows::rfc3339;
use super::webhook_args::WebhookCommand;
use super::{write_output, write_stdout};

/// How often `webhook test` looks at its delivery.
const TEST_POLL: Duration = Duration::from_millis(200);

pub async fn run(conn: &Connection, command: WebhookCommand) -> Result<(), CliError> {
    match command {
        WebhookCommand::Add {
            url,
            events,
            tenant,
            secret_file,
        } => {
            let secret = read_secret(&secret_file)?;
            let mut admin = connect(conn).await?;
            let request = AddWebhookRequest {
                url,
                events,
                tenant,
                secret,
            };
            let added = call("add a webhook", admin.add_webhook(request)).await?;
            write_stdout(&format!("{}\n", added.id))
        }
        WebhookCommand::List { format } => list(conn, format).await,
        WebhookCommand::Remove { id } => {
            let mut admin = connect(conn).await?;
            let request = RemoveWebhookRequest { id: id.clone() };
            call(
                &format!("remove webhook {id}"),
                admin.remove_webhook(request),
            )
            .await?;
            eprintln!("webhook {id} removed, with its deliveries");
            Ok(())
        }
        WebhookCommand::Test { id, wait_timeout } => test(conn, &id, wait_timeout).await,
        WebhookCommand::Deliveries { id, limit, format } => {
            let mut admin = connect(conn).await?;
            let found = deliveries(&mut admin, &id, limit, "").await?;
            let rows: Vec<Value> = found.iter().map(delivery_json).collect();
            let text = match format {
                Format::Json => pretty(&json!({ "webhook": id, "deliveries": rows })),
                Format::Table | Format::Csv => {
                    let headers = ["EVENT", "TYPE", "TIME", "STATE", "ATTEMPTS", "LAST", "NEXT"];
                    let cells: Vec<Vec<String>> = found.iter().map(delivery_cells).collect();
                    table(&headers, &cells)
                }
            };
            write_output(format, &text)
        }
    }
}

/// The secret in `path`, less one trailing newline; a file others may read is named.
fn read_secret(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadFile {
        what: "webhook secret file",
        path: path.to_path_buf(),
        source,
    })?;
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(CliError::Usage(format!(
            "webhook secret file {} is empty",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: {} can be read by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    Ok(secret.to_string())
}

async fn deliveries(
    admin: &mut AdminClient,
    id: &str,
    limit: u32,
    event_id: &str,
) -> Result<Vec<WebhookDelivery>, CliError> {
    let request = WebhookDeliveriesRequest {
        id: id.into(),
        limit,
        event_id: event_id.into(),
    };
    let action = format!("read the deliveries of webhook {id}");
    Ok(call(&action, admin.webhook_deliveries(request))
        .await?
        .deliveries)
}

/// Queues a test event, then waits for its first attempt and says how it went.
async fn test(conn: &Connection, id: &str, wait: Duration) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let request = TestWebhookRequest { id: id.into() };
    let event = call(&format!("test webhook {id}"), admin.test_webhook(request))
        .await?
        .event_id;
    let deadline = Instant::now() + wait;
    loop {
        let found = deliveries(&mut admin, id, 1, &event).await?;
        let Some(delivery) = found.into_iter().next() else {
            return Err(CliError::Webhook(format!(
                "webhook {id}: the test event {event} is gone (was the webhook removed?)"
            )));
        };
        if delivery.state == "delivered" {
            let status = delivery.last_status;
            eprintln!("webhook {id}: test event {event} delivered (HTTP {status})");
            return Ok(());
        }
        if delivery.attempts > 0 || Instant::now() >= deadline {
            let outcome = if delivery.attempts == 0 {
                format!("no attempt within {}", humantime::format_duration(wait))
            } else {
                last_outcome(&delivery)
            };
            let next = rfc3339(delivery.next_attempt_at)
                .map(|at| format!("; retried at {at}"))
                .unwrap_or_default();
            return Err(CliError::Webhook(format!(
                "webhook {id}: test event {event} not delivered: {outcome}{next}"
            )));
        }
        tokio::time::sleep(TEST_POLL).await;
    }
}

async fn list(conn: &Connection, format: Format) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let hooks = call("list webhooks", admin.list_webhooks(ListWebhooksRequest {}))
        .await?
        .webhooks;
    let text = match format {
        Format::Json => {
            let rows: Vec<Value> = hooks
                .iter()
                .map(|h| {
                    json!({
                        "id": h.id, "url": h.url, "events": h.events,
                        "tenant": (!h.tenant.is_empty()).then_some(&h.tenant),
                        "pending": h.pending, "failed": h.failed,
                        "created_by": h.created_by, "created_at": rfc3339(h.created_at),
                    })
                })
                .collect();
            pretty(&json!({ "webhooks": rows }))
        }
        Format::Table | Format::Csv => {
            let headers = [
                "ID", "URL", "EVENTS", "TENANT", "PENDING", "FAILED", "BY", "CREATED",
            ];
            let cells: Vec<Vec<String>> = hooks
                .iter()
                .map(|h| {
                    vec![
                        h.id.clone(),
                        h.url.clone(),
                        h.events.join(","),
                        if h.tenant.is_empty() {
                            "all".into()
                        } else {
                            h.tenant.clone()
                        },
                        h.pending.to_string(),
                        h.failed.to_string(),
                        h.created_by.clone(),
                        rfc3339(h.created_at).unwrap_or_default(),
                    ]
                })
                .collect();
            table(&headers, &cells)
        }
    };
    write_output(format, &text)
}

/// The last attempt's outcome: its status or why it had none.
fn last_outcome(d: &WebhookDelivery) -> String {
    match (d.last_status, d.last_error.as_str()) {
        (0, "") => "-".into(),
        (0, error) => error.into(),
        (status, "") => format!("HTTP {status}"),
        (_, error) => error.into(),
    }
}

fn delivery_json(d: &WebhookDelivery) -> Value {
    json!({
        "event_id": d.event_id, "type": d.event_type, "time": rfc3339(d.created_at),
        "state": d.state, "attempts": d.attempts,
        "last_status": (d.last_status != 0).then_some(d.last_status),
        "last_error": (!d.last_error.is_empty()).then_some(&d.last_error),
        "last_attempt_at": rfc3339(d.last_attempt_at),
        "next_attempt_at": rfc3339(d.next_attempt_at),
    })
}

fn delivery_cells(d: &WebhookDelivery) -> Vec<String> {
    vec![
        d.event_id.clone(),
        d.event_type.clone(),
        rfc3339(d.created_at).unwrap_or_default(),
        d.state.clone(),
        d.attempts.to_string(),
        last_outcome(d),
        rfc3339(d.next_attempt_at).unwrap_or_else(|| "-".into()),
    ]
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("json") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_loses_one_trailing_newline_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "hunter2hunter2hunter2\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), "hunter2hunter2hunter2");
        std::fs::write(&path, "a b \r\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), "a b ");
        std::fs::write(&path, "\n").unwrap();
        let err = read_secret(&path).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = read_secret(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, CliError::ReadFile { .. }), "{err}");
        assert_eq!(err.exit_code(), boltfleet_common::config::EXIT_CONFIG);
    }

    #[test]
    fn the_last_outcome_is_the_status_or_the_error() {
        let d = |status: u32, error: &str| WebhookDelivery {
            last_status: status,
            last_error: error.into(),
            ..WebhookDelivery::default()
        };
        assert_eq!(last_outcome(&d(200, "")), "HTTP 200");
        assert_eq!(last_outcome(&d(503, "HTTP 503")), "HTTP 503");
        assert_eq!(last_outcome(&d(0, "cannot connect")), "cannot connect");
        assert_eq!(last_outcome(&d(0, "")), "-");
    }
}
