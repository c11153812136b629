//! `boltfleet freeze on|off` and `boltfleet window set|clear`.

use boltfleet_common::proto::{SetFreezeRequest, SetWindowRequest};

use super::args::{FreezeArgs, OnOff, WindowCommand, WindowTarget};
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;
use crate::rollout::MaintenanceWindow;

pub async fn freeze(conn: &Connection, args: FreezeArgs) -> Result<(), CliError> {
    let on = args.state == OnOff::On;
    let scope = args
        .tenant
        .as_ref()
        .map_or("the fleet".to_string(), |t| format!("tenant {t}"));
    let request = SetFreezeRequest {
        on,
        tenant: args.tenant.clone().unwrap_or_default(),
    };
    let mut admin = connect(conn).await?;
    let verb = if on { "freeze" } else { "thaw" };
    call(&format!("{verb} {scope}"), admin.set_freeze(request)).await?;
    if on {
        eprintln!("{scope} frozen: no update starts there (running ones finish)");
    } else {
        eprintln!("{scope} thawed: updates may start again");
    }
    Ok(())
}

pub async fn window(conn: &Connection, command: WindowCommand) -> Result<(), CliError> {
    let (target, cron, duration, tz) = match command {
        WindowCommand::Set {
            target,
            cron,
            duration,
            tz,
        } => {
            // Checked here too, so a typo is a usage error before any connection.
            let window = MaintenanceWindow::new(&cron, duration, &tz)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let duration = humantime::format_duration(window.duration()).to_string();
            (target, window.cron().to_string(), duration, tz)
        }
        WindowCommand::Clear { target } => (target, String::new(), String::new(), String::new()),
    };
    let whose = whose(&target);
    let request = SetWindowRequest {
        tenant: target.tenant.clone().unwrap_or_default(),
        host_id: target
            .host
            .as_ref()
            .map(|h| h.to_string())
            .unwrap_or_default(),
        cron: cron.clone(),
        duration: duration.clone(),
        tz: tz.clone(),
    };
    let mut admin = connect(conn).await?;
    call(
        &format!("set the window of {whose}"),
        admin.set_window(request),
    )
    .await?;
    if cron.is_empty() {
        eprintln!("{whose}: window cleared");
    } else {
        eprintln!("{whose}: window {cron} for {duration} ({tz})");
    }
    Ok(())
}

fn whose(target: &WindowTarget) -> String {
    match (&target.tenant, &target.host) {
        (Some(t), _) => format!("tenant {t}"),
        (None, Some(h)) => format!("host {h}"),
        (None, None) => "nobody".into(),
    }
}
