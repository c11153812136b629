//! `boltfleet host ...`: acting on one host.

use boltfleet_common::proto::{JobKind, JobOptions, RevokeHostRequest, StartJobRequest};

use super::args::{HostCommand, WaitArgs};
use super::client::{call, connect, Admin};
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
    }
}

/// Starts the job, prints its id on stdout, and waits for it when asked.
async fn start(
    admin: &mut Admin,
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
