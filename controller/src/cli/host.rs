//! `boltfleet host ...`: acting on one host.

use boltfleet_common::proto::{
    JobKind, JobOptions, RevokeHostRequest, SetLatestReleaseRequest, StartJobRequest,
};

use boltfleet_common::identity::HostId;

use super::args::{HostCommand, ReleaseCommand, WaitArgs};
use super::client::{call, connect, AdminClient};
use super::config::Connection;
use super::error::CliError;
use super::job::wait_for;

pub async fn run(conn: &Connection, command: HostCommand) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    match command {
        HostCommand::Revoke { id } => {
            let request = RevokeHostRequest {
                host_id: id.to_string(),
            };
            call(&format!("revoke host {id}"), admin.revoke_host(request)).await?;
            eprintln!("host {id} revoked: its certificate is refused from now on");
            Ok(())
        }
        HostCommand::Show { id, format } => {
            super::host_show::show(&mut admin, id.as_str(), format).await
        }
        HostCommand::Forget { id } => super::host_show::forget(&mut admin, id.as_str()).await,
        HostCommand::History { id, format } => {
            super::history::show(&mut admin, id.as_str(), format).await
        }
        HostCommand::Update {
            id,
            to,
            answers,
            no_auto_rollback,
            wait,
        } => {
            let request = StartJobRequest {
                host_id: id.to_string(),
                kind: JobKind::Update as i32,
                target_version: to.to_string(),
                options: Some(JobOptions {
                    migration_answers: answers,
                    no_auto_rollback,
                }),
            };
            start(
                &mut admin,
                &format!("update host {id} to {to}"),
                request,
                &wait,
            )
            .await
        }
        HostCommand::Rollback { id, wait } => {
            let request = StartJobRequest {
                host_id: id.to_string(),
                kind: JobKind::Rollback as i32,
                target_version: String::new(),
                options: Some(JobOptions::default()),
            };
            start(&mut admin, &format!("roll back host {id}"), request, &wait).await
        }
        HostCommand::Healthcheck { id, wait } => {
            let request = cheap_job(&id, JobKind::Healthcheck);
            let action = format!("run the healthcheck on host {id}");
            start(&mut admin, &action, request, &wait).await
        }
        HostCommand::Backup { id, wait } => {
            let request = cheap_job(&id, JobKind::Backup);
            let action = format!("back up host {id}");
            start(&mut admin, &action, request, &wait).await
        }
    }
}

/// `release latest`: sets or clears the fleet's or a tenant's latest release.
pub async fn release(conn: &Connection, command: ReleaseCommand) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let ReleaseCommand::Latest {
        version,
        tenant,
        clear,
    } = command;
    let version = if clear {
        String::new()
    } else {
        version.map(|v| v.to_string()).unwrap_or_default()
    };
    let whose = if tenant.is_empty() {
        "the fleet".to_string()
    } else {
        format!("tenant {tenant}")
    };
    let request = SetLatestReleaseRequest {
        version: version.clone(),
        tenant,
    };
    call(
        &format!("set the latest release of {whose}"),
        admin.set_latest_release(request),
    )
    .await?;
    match version.as_str() {
        "" => eprintln!("latest release of {whose} cleared: derived from the hosts' reports"),
        v => eprintln!("latest release of {whose}: {v}"),
    }
    Ok(())
}

/// A job of `kind` that takes no target and no options (healthcheck, backup).
fn cheap_job(id: &HostId, kind: JobKind) -> StartJobRequest {
    StartJobRequest {
        host_id: id.to_string(),
        kind: kind as i32,
        target_version: String::new(),
        options: Some(JobOptions::default()),
    }
}

/// Starts the job, prints its id on stdout, and waits for it when asked.
async fn start(
    admin: &mut AdminClient,
    action: &str,
    request: StartJobRequest,
    wait: &WaitArgs,
) -> Result<(), CliError> {
    let job_id = call(action, admin.start_job(request)).await?.job_id;
    super::write_stdout(&format!("{job_id}\n"))?;
    if wait.wait {
        wait_for(admin, &job_id, wait.wait_timeout).await?;
    }
    Ok(())
}
