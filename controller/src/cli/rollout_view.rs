//! The CLI's stable view of a rollout: what `rollout status --format json` and `rollout list
//! --format json` print, and the tables read from it. Field names are interface (scripts parse
//! them); times are RFC 3339 UTC or null; empty strings from the wire become null.

use boltfleet_common::proto::{RolloutHostStatus, RolloutStatus};
use serde::Serialize;

use super::render::table;
use super::rows::rfc3339;
use super::safe::text as show;

/// One rollout. The first fields are the documented core: `id`, `target`, `state`
/// (planned|running|paused|completed|aborted), `reason` (why paused or stopped, or null),
/// `waves`; the rest adds detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutView {
    pub id: String,
    pub target: String,
    pub state: String,
    pub reason: Option<String>,
    pub waves: Vec<WaveView>,
    /// Selected hosts the plan skipped (in no wave), with their `skip_reason`.
    pub skipped: Vec<HostStatusView>,
    /// Index of the wave in progress.
    pub current_wave: u32,
    pub awaiting_promotion: bool,
    pub eligible: u32,
    pub failures: u32,
    pub created_by: String,
    pub created_at: Option<String>,
    /// Set once `abort --rollback` asked to revert the updated hosts.
    pub rollback: Option<RollbackView>,
    /// Set when a tenant it touches requires approval (two-person rule).
    pub approval: Option<ApprovalView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalView {
    /// The tenants whose policy requires it.
    pub tenants: Vec<String>,
    /// Null until approved.
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveView {
    /// 0 for the canary.
    pub index: u32,
    pub hosts: Vec<HostStatusView>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStatusView {
    pub host_id: String,
    pub tenant: String,
    /// pending|running|succeeded|rolled_back|rollback_failed|skipped|failed
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub failed_step: Option<String>,
    pub skip_reason: Option<String>,
    /// The state in words.
    pub detail: String,
    /// The step the host's job is running now.
    pub current_step: Option<String>,
    pub job_id: Option<String>,
    /// The rollout's rollback of the host: pending|running|done|failed|skipped, or null.
    pub rollback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackView {
    pub requested_by: String,
    pub requested_at: Option<String>,
    /// Null while hosts are still being rolled back.
    pub finished_at: Option<String>,
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<&RolloutHostStatus> for HostStatusView {
    fn from(h: &RolloutHostStatus) -> Self {
        HostStatusView {
            host_id: h.host_id.clone(),
            tenant: h.tenant.clone(),
            state: h.state.clone(),
            started_at: rfc3339(h.started_at),
            finished_at: rfc3339(h.finished_at),
            failed_step: text(&h.failed_step),
            skip_reason: text(&h.skip_reason),
            detail: h.detail.clone(),
            current_step: text(&h.current_step),
            job_id: text(&h.job_id),
            rollback: text(&h.rollback),
        }
    }
}

impl From<&RolloutStatus> for RolloutView {
    fn from(s: &RolloutStatus) -> Self {
        RolloutView {
            id: s.id.clone(),
            target: s.target.clone(),
            state: s.state.clone(),
            reason: text(&s.reason),
            waves: s
                .waves
                .iter()
                .map(|w| WaveView {
                    index: w.index,
                    hosts: w.hosts.iter().map(HostStatusView::from).collect(),
                    started_at: rfc3339(w.started_at),
                    finished_at: rfc3339(w.finished_at),
                })
                .collect(),
            skipped: s.skipped.iter().map(HostStatusView::from).collect(),
            current_wave: s.current_wave,
            awaiting_promotion: s.awaiting_promotion,
            eligible: s.eligible,
            failures: s.failures,
            created_by: s.created_by.clone(),
            created_at: rfc3339(s.created_at),
            rollback: s.rollback.as_ref().map(|r| RollbackView {
                requested_by: r.requested_by.clone(),
                requested_at: rfc3339(r.requested_at),
                finished_at: rfc3339(r.finished_at),
            }),
            approval: s.approval.as_ref().map(|a| ApprovalView {
                tenants: a.tenants.clone(),
                approved_by: text(&a.approved_by),
                approved_at: rfc3339(a.approved_at),
            }),
        }
    }
}

impl RolloutView {
    /// Hosts done (neither pending nor running) out of the eligible ones.
    pub fn done(&self) -> usize {
        self.waves
            .iter()
            .flat_map(|w| &w.hosts)
            .filter(|h| h.state != "pending" && h.state != "running")
            .count()
    }

    /// Whether a rollback is under way.
    pub fn rolling_back(&self) -> bool {
        self.rollback
            .as_ref()
            .is_some_and(|r| r.finished_at.is_none())
    }
}

pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("views serialize to JSON") + "\n"
}

/// `rollout list`: one line per rollout.
pub fn list_table(rollouts: &[RolloutView]) -> String {
    let rows: Vec<Vec<String>> = rollouts
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.target.clone(),
                r.state.clone(),
                format!(
                    "{}/{}",
                    (r.current_wave + 1).min(r.waves.len() as u32),
                    r.waves.len()
                ),
                format!("{}/{}", r.done(), r.eligible),
                r.failures.to_string(),
                r.created_at.clone().unwrap_or_default(),
                r.created_by.clone(),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = [
        "ID", "TARGET", "STATE", "WAVE", "DONE", "FAILED", "CREATED", "BY", "REASON",
    ];
    table(&headers, &rows)
}

/// `rollout status`: a summary, then every host wave by wave, then the skipped ones.
pub fn status_table(r: &RolloutView) -> String {
    let mut out = format!(
        "rollout {}  to {}  {}  wave {} of {}  {}/{} done  {} failed\n",
        show(&r.id),
        show(&r.target),
        show(&r.state),
        (r.current_wave + 1).min(r.waves.len() as u32),
        r.waves.len(),
        r.done(),
        r.eligible,
        r.failures
    );
    out += &format!(
        "created {} by {}\n",
        r.created_at.as_deref().unwrap_or("-"),
        show(&r.created_by)
    );
    if let Some(reason) = &r.reason {
        out += &format!("reason: {}\n", show(reason));
    }
    if r.awaiting_promotion {
        out += &format!("waiting for `boltfleet rollout promote {}`\n", show(&r.id));
    }
    if let Some(rb) = &r.rollback {
        let state = rb
            .finished_at
            .as_deref()
            .map_or("in progress".into(), |t| format!("finished {t}"));
        out += &format!("rollback asked by {}: {state}\n", show(&rb.requested_by));
    }
    if let Some(approval) = &r.approval {
        let by = approval
            .approved_by
            .as_deref()
            .map_or("not yet approved".to_string(), |by| {
                format!("approved by {}", show(by))
            });
        out += &format!(
            "approval required by tenants {}: {by}\n",
            show(&approval.tenants.join(", "))
        );
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = Vec::new();
    for wave in &r.waves {
        for h in &wave.hosts {
            rows.push(vec![
                (wave.index + 1).to_string(),
                h.host_id.clone(),
                h.tenant.clone(),
                h.state.clone(),
                dash(&h.current_step),
                dash(&h.started_at),
                dash(&h.finished_at),
                h.detail.clone(),
            ]);
        }
    }
    for h in &r.skipped {
        rows.push(vec![
            "-".into(),
            h.host_id.clone(),
            h.tenant.clone(),
            h.state.clone(),
            "-".into(),
            "-".into(),
            dash(&h.finished_at),
            h.detail.clone(),
        ]);
    }
    out.push('\n');
    let headers = [
        "WAVE", "HOST", "TENANT", "STATE", "STEP", "STARTED", "FINISHED", "DETAIL",
    ];
    out + &table(&headers, &rows)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use boltfleet_common::proto::{RollbackStatus, RolloutWave};
    use serde_json::json;

    pub(crate) fn status() -> RolloutStatus {
        let host = |id: &str, state: &str| RolloutHostStatus {
            host_id: id.into(),
            tenant: "acme".into(),
            state: state.into(),
            detail: state.into(),
            ..RolloutHostStatus::default()
        };
        let mut canary = host("web0", "rolled_back");
        canary.started_at = 1_700_000_000;
        canary.finished_at = 1_700_000_300;
        canary.failed_step = "migrate".into();
        canary.job_id = "j1".into();
        let mut running = host("web1", "running");
        running.started_at = 1_700_000_400;
        running.current_step = "backup".into();
        let mut skipped = host("web9", "skipped");
        skipped.skip_reason = "at_target".into();
        skipped.finished_at = 1_700_000_000;
        RolloutStatus {
            id: "r1".into(),
            target: "1.3.2".into(),
            state: "paused".into(),
            reason: "failure budget exceeded".into(),
            waves: vec![
                RolloutWave {
                    index: 0,
                    started_at: 1_700_000_000,
                    hosts: vec![canary],
                    ..Default::default()
                },
                RolloutWave {
                    index: 1,
                    hosts: vec![running, host("web2", "pending")],
                    ..Default::default()
                },
            ],
            skipped: vec![skipped],
            created_by: "alice".into(),
            created_at: 1_700_000_000,
            current_wave: 1,
            eligible: 3,
            failures: 1,
            rollback: Some(RollbackStatus {
                requested_by: "bob".into(),
                requested_at: 1_700_000_500,
                finished_at: 0,
            }),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn status_json_has_the_documented_shape() {
        let value: serde_json::Value =
            serde_json::from_str(&to_json(&RolloutView::from(&status()))).unwrap();
        assert_eq!(value["id"], "r1");
        assert_eq!(value["target"], "1.3.2");
        assert_eq!(value["state"], "paused");
        assert_eq!(value["reason"], "failure budget exceeded");
        assert_eq!(
            value["waves"][0],
            json!({
                "index": 0, "started_at": "2023-11-14T22:13:20Z", "finished_at": null,
                "hosts": [{
                    "host_id": "web0", "tenant": "acme", "state": "rolled_back",
                    "started_at": "2023-11-14T22:13:20Z", "finished_at": "2023-11-14T22:18:20Z",
                    "failed_step": "migrate", "skip_reason": null, "detail": "rolled_back",
                    "current_step": null, "job_id": "j1", "rollback": null
                }]
            })
        );
        assert_eq!(value["waves"][1]["hosts"][0]["current_step"], "backup");
        assert_eq!(
            value["waves"][1]["hosts"][1]["started_at"],
            serde_json::Value::Null
        );
        assert_eq!(value["skipped"][0]["skip_reason"], "at_target");
        assert_eq!(value["rollback"]["finished_at"], serde_json::Value::Null);
        let mut running = status();
        running.reason.clear();
        let value: serde_json::Value = serde_json::to_value(RolloutView::from(&running)).unwrap();
        assert_eq!(value["reason"], serde_json::Value::Null);
    }

    #[test]
    fn status_and_list_tables_read_well() {
        let view = RolloutView::from(&status());
        let text = status_table(&view);
        assert!(
            text.starts_with("rollout r1  to 1.3.2  paused  wave 2 of 2  1/3 done  1 failed\n"),
            "{text}"
        );
        assert!(text.contains("reason: failure budget exceeded\n"), "{text}");
        assert!(
            text.contains("rollback asked by bob: in progress"),
            "{text}"
        );
        let web1 = text.lines().find(|l| l.contains("web1")).unwrap();
        assert!(
            web1.starts_with("2     web1  acme    running      backup"),
            "{web1}"
        );
        let list = list_table(&[view]);
        assert!(
            list.lines()
                .nth(1)
                .unwrap()
                .starts_with("r1  1.3.2   paused  2/2   1/3"),
            "{list}"
        );
    }
}
