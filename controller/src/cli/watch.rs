//! `boltfleet rollout watch`: live progress per wave and per host until the rollout completes
//! (exit 0), pauses or is aborted (exit 1; an abort's rollback is followed to its end).
//! Progress bars on a terminal; otherwise one plain line per change, for logs and pipes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::client::AdminClient;
use super::error::CliError;
use super::rollout::get;
use super::rollout_view::{HostStatusView, RolloutView};
use super::safe::text as show;

/// How often the controller is asked for news.
const POLL: Duration = Duration::from_secs(1);

pub async fn watch(admin: &mut AdminClient, id: &str) -> Result<(), CliError> {
    let mut out: Box<dyn Progress> = if std::io::stdout().is_terminal() {
        Box::new(Bars::new(ProgressDrawTarget::stdout()))
    } else {
        Box::new(Lines::default())
    };
    loop {
        let view = RolloutView::from(&get(admin, id).await?);
        out.show(&view, boltfleet_common::clock::unix_now());
        if let Some(end) = outcome(&view) {
            out.finish();
            return end;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Some` once watching is over: completed is success; paused, or aborted with no rollback
/// left to follow, is not.
pub fn outcome(view: &RolloutView) -> Option<Result<(), CliError>> {
    let stopped = || CliError::RolloutStopped {
        id: view.id.clone(),
        state: view.state.clone(),
        reason: view.reason.clone().unwrap_or_default(),
    };
    match view.state.as_str() {
        "completed" => Some(Ok(())),
        "paused" => Some(Err(stopped())),
        "aborted" if !view.rolling_back() => Some(Err(stopped())),
        _ => None,
    }
}

trait Progress {
    fn show(&mut self, view: &RolloutView, now: i64);
    fn finish(&mut self) {}
}

/// What a host line says: state and step. A change of either is printed.
type Seen = (String, Option<String>);

/// Plain lines: the rollout's state when it changes, then one line per host change.
#[derive(Default)]
pub struct Lines {
    state: Option<(String, Option<String>)>,
    hosts: HashMap<String, Seen>,
}

impl Lines {
    /// The lines for what changed since the last call.
    pub fn changes(&mut self, view: &RolloutView, now: i64) -> Vec<String> {
        let mut lines = Vec::new();
        let state = (view.state.clone(), view.reason.clone());
        if self.state.as_ref() != Some(&state) {
            let reason = state
                .1
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            lines.push(show(&format!("rollout {} {}{reason}", view.id, state.0)).into_owned());
            self.state = Some(state);
        }
        for wave in &view.waves {
            for h in &wave.hosts {
                let seen = (h.state.clone(), h.current_step.clone());
                if self.hosts.get(&h.host_id) != Some(&seen) {
                    lines.push(host_line(wave.index, h, now));
                    self.hosts.insert(h.host_id.clone(), seen);
                }
            }
        }
        lines
    }
}

impl Progress for Lines {
    fn show(&mut self, view: &RolloutView, now: i64) {
        for line in self.changes(view, now) {
            println!("{line}");
        }
    }
}

/// `wave 1  web0  running  step backup  1m 5s`, every value shown through [`show`].
pub fn host_line(wave: u32, h: &HostStatusView, now: i64) -> String {
    let mut line = format!(
        "wave {}  {}  {}",
        wave + 1,
        show(&h.host_id),
        show(&h.state)
    );
    if let Some(step) = &h.current_step {
        line += &format!("  step {}", show(step));
    }
    if let Some(step) = &h.failed_step {
        line += &format!("  at {}", show(step));
    }
    if let Some(d) = elapsed(h, now) {
        line += &format!("  {}", humantime::format_duration(Duration::from_secs(d)));
    }
    line
}

/// How long the host has been at it, or took.
fn elapsed(h: &HostStatusView, now: i64) -> Option<u64> {
    let secs = |t: &Option<String>| {
        t.as_ref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    let start = secs(&h.started_at)?;
    let end = secs(&h.finished_at).unwrap_or(now);
    u64::try_from(end - start).ok()
}

/// Progress bars: one per wave (hosts done of its hosts), one spinner per running host.
struct Bars {
    multi: MultiProgress,
    header: Option<ProgressBar>,
    waves: Vec<ProgressBar>,
    hosts: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(target),
            header: None,
            waves: Vec::new(),
            hosts: HashMap::new(),
        }
    }
}

impl Progress for Bars {
    fn show(&mut self, view: &RolloutView, now: i64) {
        let multi = self.multi.clone();
        let header = self.header.get_or_insert_with(|| {
            let line = ProgressStyle::with_template("{msg}").expect("a valid template");
            multi.add(ProgressBar::new_spinner().with_style(line))
        });
        let reason = view
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        header.set_message(
            show(&format!(
                "rollout {} to {}: {}{reason}",
                view.id, view.target, view.state
            ))
            .into_owned(),
        );
        let style = ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len}")
            .expect("a valid template")
            .progress_chars("=> ");
        for wave in &view.waves {
            let i = wave.index as usize;
            while self.waves.len() <= i {
                let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                self.waves.push(bar);
            }
            let done = wave
                .hosts
                .iter()
                .filter(|h| h.state != "pending" && h.state != "running")
                .count();
            let bar = &self.waves[i];
            bar.set_length(wave.hosts.len() as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("wave {}", wave.index + 1));
            for h in &wave.hosts {
                self.host(&multi, wave.index, h, now);
            }
        }
    }

    fn finish(&mut self) {
        for bar in self
            .waves
            .iter()
            .chain(self.hosts.values())
            .chain(&self.header)
        {
            bar.abandon();
        }
    }
}

impl Bars {
    /// A spinner under its wave while the host runs; once done it goes, and a host that did
    /// not succeed leaves a line above the bars.
    fn host(&mut self, multi: &MultiProgress, wave: u32, h: &HostStatusView, now: i64) {
        let running = h.state == "running";
        match (self.hosts.get(&h.host_id), running) {
            (Some(bar), true) => bar.set_message(host_line(wave, h, now)),
            (Some(bar), false) => {
                bar.finish_and_clear();
                self.hosts.remove(&h.host_id);
                if h.state != "succeeded" {
                    let _ = multi.println(host_line(wave, h, now));
                }
            }
            (None, true) => {
                let spinner = ProgressBar::new_spinner();
                let bar = match self.waves.get(wave as usize) {
                    Some(wave_bar) => multi.insert_after(wave_bar, spinner),
                    None => multi.add(spinner),
                };
                bar.enable_steady_tick(Duration::from_millis(200));
                bar.set_message(host_line(wave, h, now));
                self.hosts.insert(h.host_id.clone(), bar);
            }
            (None, false) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::rollout_view::tests::status;

    #[test]
    fn plain_lines_print_each_change_once() {
        let mut lines = Lines::default();
        let mut s = status();
        s.state = "running".into();
        s.reason.clear();
        s.rollback = None;
        let first = lines.changes(&RolloutView::from(&s), 1_700_000_465);
        assert_eq!(
            first,
            [
                "rollout r1 running",
                "wave 1  web0  rolled_back  at migrate  5m",
                "wave 2  web1  running  step backup  1m 5s",
                "wave 2  web2  pending",
            ]
        );
        assert!(
            lines
                .changes(&RolloutView::from(&s), 1_700_000_500)
                .is_empty(),
            "nothing new"
        );
        s.waves[1].hosts[0].current_step = "migrate".into();
        s.state = "paused".into();
        s.reason = "by operator bob".into();
        let next = lines.changes(&RolloutView::from(&s), 1_700_000_520);
        assert_eq!(
            next,
            [
                "rollout r1 paused: by operator bob",
                "wave 2  web1  running  step migrate  2m"
            ]
        );
    }

    #[test]
    fn watching_ends_on_completion_pause_or_abort_after_its_rollback() {
        let mut s = status(); // paused, rollback in progress
        let ended = |s: &RolloutStatus| {
            outcome(&RolloutView::from(s)).map(|r| r.map_err(|e| e.exit_code()))
        };
        assert_eq!(ended(&s), Some(Err(1)));
        s.state = "aborted".into();
        assert_eq!(ended(&s), None, "following the rollback");
        s.rollback.as_mut().unwrap().finished_at = 1_700_001_000;
        assert_eq!(ended(&s), Some(Err(1)));
        s.state = "running".into();
        assert_eq!(ended(&s), None);
        s.state = "completed".into();
        assert_eq!(ended(&s), Some(Ok(())));
    }

    #[test]
    fn bars_follow_waves_and_running_hosts() {
        let mut bars = Bars::new(ProgressDrawTarget::hidden());
        let mut s = status();
        bars.show(&RolloutView::from(&s), 1_700_000_465);
        assert_eq!(bars.waves.len(), 2);
        assert_eq!(bars.waves[1].length(), Some(2));
        assert!(
            bars.hosts.contains_key("web1"),
            "a spinner for the running host"
        );
        s.waves[1].hosts[0].state = "succeeded".into();
        bars.show(&RolloutView::from(&s), 1_700_000_600);
        assert!(bars.hosts.is_empty());
        assert_eq!(bars.waves[1].position(), 1);
        bars.finish();
    }

    use boltfleet_common::proto::RolloutStatus;
}
