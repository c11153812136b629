//! Maintenance windows (cron opening, duration, IANA zone), which of them applies to a host, and
//! freezes.
//!
//! A window opens at each firing of a 5-field cron schedule, read on the wall clock of its
//! zone, and closes `duration` later ON THAT WALL CLOCK: `0 22 * * *` for 8h closes at 06:00
//! local every night, so it is 7h of real time on the spring-forward night and 9h on the
//! fall-back night (customers think in local hours, and a window never runs past its local
//! end). A window closing at 03:00 on the fall-back night thus also covers the repeated hour
//! before it. An opening that falls into a DST gap
//! happens at the end of the gap (croner's rule) and keeps its full length. Openings whose
//! windows overlap or touch merge into one longer window.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

/// How far ahead window searches look.
pub const HORIZON: Duration = Duration::from_secs(14 * 24 * 3600);
/// Longest window accepted.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// Merged openings followed when measuring the time left; beyond, `remaining` is a lower bound.
const MAX_MERGED: usize = 48;
/// Openings examined when searching for one with enough time left.
const MAX_OPENINGS: usize = 2000;

/// A window that cannot be used, naming the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window cron {cron:?}: {message}")]
    Cron { cron: String, message: String },
    #[error("window duration {0:?}: must be between 1m and 7 days")]
    Duration(String),
    #[error("window time zone {0:?}: not an IANA time zone name")]
    TimeZone(String),
    #[error("window {0:?}: expected `CRON DURATION ZONE`, e.g. `0 22 * * * 4h Europe/Paris`")]
    Format(String),
}

/// When a host may start an update.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "WindowText", into = "WindowText")]
pub struct MaintenanceWindow {
    text: WindowText,
    cron: Cron,
    tz: TimeZone,
}

/// The stored form: `{"cron": "0 22 * * *", "duration": "4h", "tz": "Europe/Paris"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct WindowText {
    cron: String,
    duration: String,
    tz: String,
}

impl MaintenanceWindow {
    /// A window opening at each firing of `cron` (5 fields, or `@daily`-style nicknames) in the
    /// IANA zone `tz`, open for `duration`.
    pub fn new(cron: &str, duration: Duration, tz: &str) -> Result<Self, WindowError> {
        let parsed = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| WindowError::Cron {
                cron: cron.into(),
                message: e.to_string(),
            })?;
        let duration_text = humantime::format_duration(duration).to_string();
        if duration < Duration::from_secs(60) || duration > MAX_WINDOW {
            return Err(WindowError::Duration(duration_text));
        }
        let zone = TimeZone::get(tz).map_err(|_| WindowError::TimeZone(tz.into()))?;
        Ok(Self {
            text: WindowText {
                cron: cron.trim().into(),
                duration: duration_text,
                tz: tz.into(),
            },
            cron: parsed,
            tz: zone,
        })
    }

    pub fn cron(&self) -> &str {
        &self.text.cron
    }

    pub fn duration(&self) -> Duration {
        // Checked in `new`; the text round-trips.
        humantime::parse_duration(&self.text.duration).unwrap_or_default()
    }

    pub fn tz(&self) -> &str {
        &self.text.tz
    }

    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.current(now).is_some()
    }

    /// How long the window stays open from `now`; `None` when it is closed.
    pub fn remaining(&self, now: Timestamp) -> Option<Duration> {
        let end = self.merged_end(self.current(now)?);
        Some(end.duration_since(now).unsigned_abs())
    }

    /// `now` if the window is open, else its next opening within [`HORIZON`].
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        if self.is_open(now) {
            return Some(now);
        }
        let next = self
            .cron
            .find_next_occurrence(&self.zoned(now), false)
            .ok()?;
        (next.timestamp() <= later(now, HORIZON)).then(|| next.timestamp())
    }

    /// The earliest instant from `now` within [`HORIZON`] at which the window is open with at
    /// least `min_left` to go: `now` itself, or an opening.
    pub fn next_start(&self, now: Timestamp, min_left: Duration) -> Option<Timestamp> {
        if self.remaining(now).is_some_and(|left| left >= min_left) {
            return Some(now);
        }
        let horizon = later(now, HORIZON);
        let mut from = self.zoned(now);
        for _ in 0..MAX_OPENINGS {
            let open = self.cron.find_next_occurrence(&from, false).ok()?;
            let at = open.timestamp();
            if at > horizon {
                return None;
            }
            if self.merged_end(at).duration_since(at).unsigned_abs() >= min_left {
                return Some(at);
            }
            from = open;
        }
        None
    }

    /// The latest opening at or before `now` whose window is still open at `now`.
    fn current(&self, now: Timestamp) -> Option<Timestamp> {
        let open = self
            .cron
            .find_previous_occurrence(&self.zoned(now), true)
            .ok()?;
        (self.end_of(&open) > now).then(|| open.timestamp())
    }

    /// The end of the window opened at `open`, on the zone's wall clock.
    fn end_of(&self, open: &Zoned) -> Timestamp {
        let end = open.datetime().saturating_add(self.duration());
        self.tz
            .to_ambiguous_zoned(end)
            .compatible()
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX)
    }

    /// The end of the window opened at `open`, extended through openings that start before it
    /// closes.
    fn merged_end(&self, open: Timestamp) -> Timestamp {
        let mut cursor = self.zoned(open);
        let mut end = self.end_of(&cursor);
        for _ in 0..MAX_MERGED {
            let Ok(next) = self.cron.find_next_occurrence(&cursor, false) else {
                break;
            };
            if next.timestamp() > end {
                break;
            }
            end = end.max(self.end_of(&next));
            cursor = next;
        }
        end
    }

    fn zoned(&self, at: Timestamp) -> Zoned {
        at.to_zoned(self.tz.clone())
    }
}

/// `at + d`, saturating.
pub(crate) fn later(at: Timestamp, d: Duration) -> Timestamp {
    at.saturating_add(d).unwrap_or(Timestamp::MAX)
}

impl FromStr for MaintenanceWindow {
    type Err = WindowError;

    /// `CRON DURATION ZONE`: `0 22 * * * 4h Europe/Paris`.
    fn from_str(text: &str) -> Result<Self, WindowError> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let format = || WindowError::Format(text.into());
        let (Some(tz), Some(duration)) = (words.pop(), words.pop()) else {
            return Err(format());
        };
        if words.is_empty() {
            return Err(format());
        }
        let duration = humantime::parse_duration(duration)
            .map_err(|_| WindowError::Duration(duration.into()))?;
        Self::new(&words.join(" "), duration, tz)
    }
}

impl TryFrom<WindowText> for MaintenanceWindow {
    type Error = WindowError;

    fn try_from(text: WindowText) -> Result<Self, WindowError> {
        let duration = humantime::parse_duration(&text.duration)
            .map_err(|_| WindowError::Duration(text.duration.clone()))?;
        Self::new(&text.cron, duration, &text.tz)
    }
}

impl From<MaintenanceWindow> for WindowText {
    fn from(window: MaintenanceWindow) -> Self {
        window.text
    }
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let WindowText { cron, duration, tz } = &self.text;
        write!(f, "{cron} {duration} {tz}")
    }
}

impl fmt::Debug for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaintenanceWindow({self})")
    }
}

impl PartialEq for MaintenanceWindow {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for MaintenanceWindow {}

/// By the text, as equality: equal windows open and close alike, so the planner computes each
/// distinct window once.
impl std::hash::Hash for MaintenanceWindow {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

/// The windows operators configured: a host's own window wins over its tenant's. A host with
/// neither may start at any time (most fleets start without windows; a rollout must not stall
/// on hosts nobody configured — set a tenant window to restrict them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    #[serde(default)]
    pub tenants: BTreeMap<String, MaintenanceWindow>,
    #[serde(default)]
    pub hosts: BTreeMap<String, MaintenanceWindow>,
}

impl Windows {
    pub fn for_host(&self, host_id: &str, tenant: &str) -> Option<&MaintenanceWindow> {
        self.hosts.get(host_id).or_else(|| self.tenants.get(tenant))
    }
}

/// Freezes: while one covers a host's tenant, no update starts there (running ones finish).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    #[serde(default)]
    pub global: bool,
    #[serde(default)]
    pub tenants: BTreeSet<String>,
}

impl Freeze {
    pub fn covers(&self, tenant: &str) -> bool {
        self.global || self.tenants.contains(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn window(text: &str) -> MaintenanceWindow {
        text.parse().unwrap()
    }

    const H: u64 = 3600;

    #[test]
    fn a_night_window_spans_midnight() {
        let w = window("0 22 * * * 4h Europe/Paris"); // 22:00-02:00 local, UTC+1 in January
        let cases = [
            ("2025-01-15T20:59:00Z", None),           // 21:59 local
            ("2025-01-15T21:00:00Z", Some(4 * H)),    // 22:00, opening inclusive
            ("2025-01-15T23:30:00Z", Some(H + 1800)), // 00:30 the next day
            ("2025-01-16T00:59:00Z", Some(60)),
            ("2025-01-16T01:00:00Z", None), // 02:00, closing exclusive
        ];
        for (now, left) in cases {
            let left = left.map(Duration::from_secs);
            assert_eq!(w.remaining(at(now)), left, "{now}");
            assert_eq!(w.is_open(at(now)), left.is_some(), "{now}");
        }
        assert_eq!(
            w.next_open(at("2025-01-15T12:00:00Z")),
            Some(at("2025-01-15T21:00:00Z"))
        );
        let inside = at("2025-01-15T23:00:00Z");
        assert_eq!(w.next_open(inside), Some(inside));
    }

    #[test]
    fn next_start_wants_enough_time_left() {
        let w = window("0 22 * * * 4h Europe/Paris");
        let half = Duration::from_secs(1800);
        // 01:45 local: open, 15m left: too little; tomorrow 22:00 it is.
        assert_eq!(
            w.next_start(at("2025-01-16T00:45:00Z"), half),
            Some(at("2025-01-16T21:00:00Z"))
        );
        let open = at("2025-01-15T23:00:00Z");
        assert_eq!(w.next_start(open, half), Some(open));
        // Feb 30th never comes; a 1h window never fits a 2h job.
        let never = window("0 1 30 2 * 4h UTC");
        assert_eq!(never.next_open(open), None);
        assert_eq!(never.next_start(open, half), None);
        let short = window("0 1 * * * 1h UTC");
        assert_eq!(short.next_start(open, Duration::from_secs(2 * H)), None);
        // A monthly window three weeks away is past the horizon.
        let monthly = window("0 1 1 * * 4h UTC");
        assert_eq!(monthly.next_open(at("2025-01-05T00:00:00Z")), None);
        assert!(monthly.next_open(at("2025-01-20T00:00:00Z")).is_some());
    }

    #[test]
    fn windows_follow_the_wall_clock_across_dst_in_paris() {
        // 2025-03-30: 02:00 CET -> 03:00 CEST. 2025-10-26: 03:00 CEST -> 02:00 CET.
        let w = window("0 22 * * * 8h Europe/Paris"); // 22:00-06:00 local
                                                      // Spring forward: opens 21:00Z (CET), closes 06:00 CEST = 04:00Z: 7h real.
        assert_eq!(
            w.remaining(at("2025-03-29T21:00:00Z")),
            Some(Duration::from_secs(7 * H))
        );
        assert!(!w.is_open(at("2025-03-30T04:00:00Z")));
        // Fall back: opens 20:00Z (CEST), closes 06:00 CET = 05:00Z: 9h real.
        assert_eq!(
            w.remaining(at("2025-10-25T20:00:00Z")),
            Some(Duration::from_secs(9 * H))
        );
        assert!(w.is_open(at("2025-10-26T04:59:00Z")));
        assert!(!w.is_open(at("2025-10-26T05:00:00Z")));

        // An opening inside the gap (02:30 does not exist on 03-30) happens at 03:00 CEST.
        let gap = window("30 2 * * * 1h Europe/Paris");
        assert_eq!(
            gap.next_open(at("2025-03-29T23:00:00Z")),
            Some(at("2025-03-30T01:00:00Z"))
        );
        assert_eq!(
            gap.remaining(at("2025-03-30T01:00:00Z")),
            Some(Duration::from_secs(H))
        );
        // An opening in the repeated hour (02:30 twice on 10-26) happens once, the first time,
        // and lasts until the wall clock reads 03:00: after the repeated hour.
        let fold = window("30 2 * * * 30m Europe/Paris");
        let first = at("2025-10-26T00:30:00Z"); // 02:30 CEST
        assert_eq!(fold.next_open(at("2025-10-25T22:00:00Z")), Some(first));
        assert!(fold.is_open(at("2025-10-26T01:45:00Z")), "02:45 CET");
        assert!(!fold.is_open(at("2025-10-26T02:00:00Z")), "03:00 CET");
        assert_eq!(
            fold.next_open(at("2025-10-26T02:00:00Z")),
            Some(at("2025-10-27T01:30:00Z")),
            "not reopened at 02:30 CET"
        );
    }

    #[test]
    fn overlapping_openings_merge() {
        // Every hour for 90 minutes: always open; time left runs through the merged openings.
        let w = window("0 * * * * 90m UTC");
        let now = at("2025-01-15T10:45:00Z");
        assert!(w.remaining(now).unwrap() > Duration::from_secs(24 * H));
        assert_eq!(w.next_start(now, Duration::from_secs(1800)), Some(now));
    }

    #[test]
    fn bad_windows_are_refused_naming_the_part() {
        let cases = [
            ("0 22 * * 4h Europe/Paris", "window cron"),
            ("0 0 22 * * * 4h Europe/Paris", "window cron"), // seconds are not allowed
            ("0 22 * * * 4h Mars/Olympus", "window time zone"),
            ("0 22 * * * 0s UTC", "window duration"),
            ("0 22 * * * 8d UTC", "window duration"),
            ("0 22 * * * soon UTC", "window duration"),
            ("4h UTC", "window \"4h UTC\""),
        ];
        for (text, want) in cases {
            let err = text
                .parse::<MaintenanceWindow>()
                .expect_err(text)
                .to_string();
            assert!(err.starts_with(want), "{text}: {err}");
        }
        assert!(window("@daily 2h UTC").is_open(at("2025-01-15T01:00:00Z")));
    }

    #[test]
    fn windows_round_trip_and_resolve_per_host_then_tenant() {
        let w = window("0 22 * * * 4h Europe/Paris");
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"cron":"0 22 * * *","duration":"4h","tz":"Europe/Paris"}"#
        );
        assert_eq!(serde_json::from_str::<MaintenanceWindow>(&json).unwrap(), w);
        let bad = json.replace("Paris", "Nowhere");
        assert!(serde_json::from_str::<MaintenanceWindow>(&bad).is_err());

        let own = window("0 1 * * * 1h UTC");
        let windows = Windows {
            tenants: BTreeMap::from([("acme".into(), w.clone())]),
            hosts: BTreeMap::from([("web2".into(), own.clone())]),
        };
        assert_eq!(windows.for_host("web1", "acme"), Some(&w));
        assert_eq!(windows.for_host("web2", "acme"), Some(&own));
        assert_eq!(windows.for_host("web3", "globex"), None);

        let freeze = Freeze {
            global: false,
            tenants: BTreeSet::from(["acme".to_string()]),
        };
        assert!(freeze.covers("acme") && !freeze.covers("globex"));
        assert!(Freeze {
            global: true,
            ..Freeze::default()
        }
        .covers("globex"));
    }
}
