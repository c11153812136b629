//! `rollout plan` output: per wave and per host, the update class, when its window lets it
//! start and the config defaults that change; then the hosts skipped and why.

use boltfleet_common::proto::{PlannedHost, RolloutPlan};
use serde::Serialize;

use super::render::table;
use super::rows::rfc3339;
use crate::rollout::SkipReason;

/// `rollout plan --format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanView {
    pub target: String,
    pub planned_at: Option<String>,
    pub waves: Vec<PlanWave>,
    pub skipped: Vec<PlanSkip>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanWave {
    /// 0 for the canary.
    pub index: u32,
    pub hosts: Vec<PlanHost>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanHost {
    pub host_id: String,
    pub tenant: String,
    pub from: Option<String>,
    /// "patch" or "minor".
    pub update: String,
    /// When its maintenance window first lets it start; null when it has none (any time).
    pub next_window: Option<String>,
    /// `CRON DURATION ZONE`, or null.
    pub window: Option<String>,
    /// Default config files that change (known once a host made the same jump).
    pub config_changes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSkip {
    pub host_id: String,
    pub tenant: String,
    pub from: Option<String>,
    /// snake_case: at_target, major_jump, downgrade, offline, unhealthy, frozen,
    /// no_window_in_horizon, unknown_version.
    pub skip_reason: String,
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<&RolloutPlan> for PlanView {
    fn from(plan: &RolloutPlan) -> Self {
        let mut waves: Vec<PlanWave> = (0..plan.waves)
            .map(|index| PlanWave {
                index,
                hosts: Vec::new(),
            })
            .collect();
        let mut skipped = Vec::new();
        for h in &plan.hosts {
            match h.wave.and_then(|w| waves.get_mut(w as usize)) {
                Some(wave) => wave.hosts.push(planned(h)),
                None => skipped.push(PlanSkip {
                    host_id: h.host_id.clone(),
                    tenant: h.tenant.clone(),
                    from: text(&h.from_version),
                    skip_reason: h.skip_reason.clone(),
                }),
            }
        }
        PlanView {
            target: plan.target.clone(),
            planned_at: rfc3339(plan.planned_at),
            waves,
            skipped,
        }
    }
}

fn planned(h: &PlannedHost) -> PlanHost {
    PlanHost {
        host_id: h.host_id.clone(),
        tenant: h.tenant.clone(),
        from: text(&h.from_version),
        update: h.class.clone(),
        next_window: rfc3339(h.next_window),
        window: text(&h.window),
        config_changes: h.config_changes.clone(),
    }
}

/// A skip reason in words (the code itself when unknown).
pub fn skip_text(code: &str) -> String {
    serde_json::from_value::<SkipReason>(serde_json::Value::String(code.into()))
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|_| code.to_string())
}

pub fn plan_table(plan: &PlanView) -> String {
    let eligible: usize = plan.waves.iter().map(|w| w.hosts.len()).sum();
    let mut out = format!(
        "plan to {}: {} hosts in {} waves, {} skipped\n\n",
        super::safe::text(&plan.target),
        eligible,
        plan.waves.len(),
        plan.skipped.len()
    );
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = Vec::new();
    for wave in &plan.waves {
        for h in &wave.hosts {
            let start = match (&h.next_window, &plan.planned_at) {
                (None, _) => "any time".to_string(),
                (Some(at), Some(now)) if at == now => "now".to_string(),
                (Some(at), _) => at.clone(),
            };
            let changes = if h.config_changes.is_empty() {
                "-".to_string()
            } else {
                h.config_changes.join("; ")
            };
            rows.push(vec![
                (wave.index + 1).to_string(),
                h.host_id.clone(),
                h.tenant.clone(),
                dash(&h.from),
                h.update.clone(),
                start,
                dash(&h.window),
                changes,
            ]);
        }
    }
    let headers = [
        "WAVE",
        "HOST",
        "TENANT",
        "FROM",
        "UPDATE",
        "NEXT START",
        "WINDOW",
        "CONFIG DEFAULTS CHANGING",
    ];
    out += &table(&headers, &rows);
    if !plan.skipped.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .skipped
            .iter()
            .map(|h| {
                vec![
                    h.host_id.clone(),
                    h.tenant.clone(),
                    dash(&h.from),
                    skip_text(&h.skip_reason),
                ]
            })
            .collect();
        out += "\nskipped:\n";
        out += &table(&["HOST", "TENANT", "FROM", "REASON"], &rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> RolloutPlan {
        let host = |id: &str, wave: Option<u32>, class: &str| PlannedHost {
            host_id: id.into(),
            tenant: "acme".into(),
            from_version: "1.3.0".into(),
            class: class.into(),
            wave,
            ..PlannedHost::default()
        };
        let mut windowed = host("web1", Some(1), "minor");
        windowed.window = "0 22 * * * 4h Europe/Paris".into();
        windowed.next_window = 1_700_000_600;
        windowed.config_changes = vec!["M config/app.php.default".into()];
        let mut skipped = host("web9", None, "skip");
        skipped.skip_reason = "major_jump".into();
        RolloutPlan {
            target: "1.3.2".into(),
            planned_at: 1_700_000_000,
            waves: 2,
            hosts: vec![host("web0", Some(0), "patch"), windowed, skipped],
        }
    }

    #[test]
    fn plans_print_per_wave_with_windows_config_changes_and_skip_reasons() {
        let view = PlanView::from(&plan());
        let value = serde_json::to_value(&view).unwrap();
        assert_eq!(value["waves"][0]["hosts"][0]["update"], "patch");
        assert_eq!(
            value["waves"][0]["hosts"][0]["next_window"],
            serde_json::Value::Null
        );
        assert_eq!(
            value["waves"][1]["hosts"][0]["next_window"],
            "2023-11-14T22:23:20Z"
        );
        assert_eq!(
            value["skipped"],
            json!([{"host_id": "web9", "tenant": "acme", "from": "1.3.0", "skip_reason": "major_jump"}])
        );
        let text = plan_table(&view);
        assert!(
            text.starts_with("plan to 1.3.2: 2 hosts in 2 waves, 1 skipped\n"),
            "{text}"
        );
        assert!(text.contains("any time"), "{text}");
        assert!(
            text.contains("0 22 * * * 4h Europe/Paris  M config/app.php.default"),
            "{text}"
        );
        assert!(
            text.contains("major upgrade: a separate manual procedure"),
            "{text}"
        );
    }
}
