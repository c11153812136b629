//! `boltfleet rollout ...`: plan, start, list, status, watch, pause, resume, promote, abort.

use boltfleet_common::proto::{
    AbortRolloutRequest, GetRolloutRequest, ListRolloutsRequest, PlanRolloutRequest,
    RolloutActionRequest, RolloutStatus, StartRolloutRequest,
};

use super::args::{ActionArgs, Format, RolloutCommand};
use super::client::{call, connect, AdminClient};
use super::config::Connection;
use super::error::CliError;
use super::plan_view::{plan_table, PlanView};
use super::rollout_view::{list_table, status_table, to_json, RolloutView};
use super::{write_output, write_stdout};

pub async fn run(conn: &Connection, command: RolloutCommand) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    match command {
        RolloutCommand::Start(spec) => {
            let request = StartRolloutRequest {
                spec: Some(spec.to_wire()),
            };
            let action = format!("start a rollout to {}", spec.to);
            let id = call(&action, admin.start_rollout(request)).await?.id;
            eprintln!("rollout {id} started; follow it with `boltfleet rollout watch {id}`");
            write_stdout(&format!("{id}\n"))
        }
        RolloutCommand::Plan { spec, format } => {
            let request = PlanRolloutRequest {
                spec: Some(spec.to_wire()),
            };
            let action = format!("plan a rollout to {}", spec.to);
            let plan = PlanView::from(&call(&action, admin.plan_rollout(request)).await?);
            write_output(
                format,
                &match format {
                    Format::Json => to_json(&plan),
                    Format::Table | Format::Csv => plan_table(&plan),
                },
            )
        }
        RolloutCommand::List { format } => {
            let list = call("list rollouts", admin.list_rollouts(ListRolloutsRequest {})).await?;
            let views: Vec<RolloutView> = list.rollouts.iter().map(RolloutView::from).collect();
            write_output(
                format,
                &match format {
                    Format::Json => to_json(&serde_json::json!({ "rollouts": views })),
                    Format::Table | Format::Csv => list_table(&views),
                },
            )
        }
        RolloutCommand::Status { id, format } => {
            let view = RolloutView::from(&get(&mut admin, &id).await?);
            write_output(
                format,
                &match format {
                    Format::Json => to_json(&view),
                    Format::Table | Format::Csv => status_table(&view),
                },
            )
        }
        RolloutCommand::Watch { id } => super::watch::watch(&mut admin, &id).await,
        RolloutCommand::Pause(args) => {
            let status = call(
                &format!("pause rollout {}", args.id),
                admin.pause_rollout(action(&args)),
            )
            .await?;
            said(&status)
        }
        RolloutCommand::Resume(args) => {
            let status = call(
                &format!("resume rollout {}", args.id),
                admin.resume_rollout(action(&args)),
            )
            .await?;
            said(&status)
        }
        RolloutCommand::Promote(args) => {
            let status = call(
                &format!("promote rollout {}", args.id),
                admin.promote_rollout(action(&args)),
            )
            .await?;
            said(&status)
        }
        RolloutCommand::Approve(args) => {
            let status = call(
                &format!("approve rollout {}", args.id),
                admin.approve_rollout(action(&args)),
            )
            .await?;
            said(&status)
        }
        RolloutCommand::Abort { action, rollback } => {
            let request = AbortRolloutRequest {
                id: action.id.clone(),
                reason: action.reason.clone(),
                rollback,
            };
            let status = call(
                &format!("abort rollout {}", action.id),
                admin.abort_rollout(request),
            )
            .await?;
            said(&status)
        }
    }
}

fn action(args: &ActionArgs) -> RolloutActionRequest {
    RolloutActionRequest {
        id: args.id.clone(),
        reason: args.reason.clone(),
    }
}

/// Confirms an operator action on stderr (stdout stays empty for scripts).
fn said(status: &RolloutStatus) -> Result<(), CliError> {
    let reason = if status.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", status.reason)
    };
    let rollback = match &status.rollback {
        Some(r) if r.finished_at == 0 => "; rolling back the updated hosts",
        _ => "",
    };
    eprintln!(
        "{}",
        super::safe::text(&format!(
            "rollout {} is {}{reason}{rollback}",
            status.id, status.state
        ))
    );
    Ok(())
}

pub async fn get(admin: &mut AdminClient, id: &str) -> Result<RolloutStatus, CliError> {
    let request = GetRolloutRequest { id: id.to_string() };
    call(&format!("get rollout {id}"), admin.get_rollout(request)).await
}
