//! What an operator asks of a rollout: target, selection, waves, limits, failure budget and
//! deadlines; parsed from CLI strings, validated, stored as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use boltfleet_common::version::{parse_release, Version};
use serde::{Deserialize, Serialize};

pub use super::sizes::{
    parse_max_failures, parse_waves, validate_waves, wave_sizes, FailureBudget, WaveSize,
};

/// A spec value that cannot be used, naming the field (`waves[2]`, `max_failures`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Longest duration any spec field accepts: keeps timestamp arithmetic far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A staggered rollout of one release to a selection of hosts.
///
/// Waves are CUMULATIVE targets over the eligible hosts (those the plan did not skip):
/// `1,10%,100%` is one canary host, then hosts up to 10% of the eligible in total, then all
/// the rest. See [`wave_sizes`] for rounding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSpec {
    #[serde(with = "serde_version")]
    pub target: Version,
    #[serde(default)]
    pub selector: Selector,
    pub waves: Vec<WaveSize>,
    #[serde(default)]
    pub promotion: Promotion,
    /// Hosts updating at once, across the rollout.
    pub max_parallel: u32,
    /// Hosts of one tenant updating at once.
    #[serde(default)]
    pub max_parallel_per_tenant: Option<u32>,
    /// Failures tolerated: the rollout pauses when failures EXCEED it (`0` pauses on the first).
    pub max_failures: FailureBudget,
    /// Soak: how long a finished wave must stay healthy before the next one starts.
    #[serde(with = "serde_duration")]
    pub min_healthy_time: Duration,
    /// How long a host may take from its start to healthy at the target.
    #[serde(with = "serde_duration")]
    pub healthy_deadline: Duration,
    /// How long the rollout may run (from its start, or its last resume) before it pauses.
    #[serde(default, with = "serde_duration::option")]
    pub progress_deadline: Option<Duration>,
    /// How long a host whose turn has come may stay offline or unhealthy before it is skipped.
    #[serde(with = "serde_duration")]
    pub ready_timeout: Duration,
    /// Window cutoff: a host starts only if its maintenance window stays open this long.
    #[serde(with = "serde_duration")]
    pub expected_job_duration: Duration,
}

impl RolloutSpec {
    /// A spec with the defaults: all hosts, waves `1,10%,100%`, automatic promotion, 5 at once,
    /// pause on the first failure, 10m soak, 1h healthy deadline, no progress deadline, 1h ready
    /// timeout, 30m expected job duration.
    pub fn new(target: Version) -> Self {
        Self {
            target,
            selector: Selector::default(),
            waves: vec![
                WaveSize::Count(1),
                WaveSize::Percent(10),
                WaveSize::Percent(100),
            ],
            promotion: Promotion::Auto,
            max_parallel: 5,
            max_parallel_per_tenant: None,
            max_failures: FailureBudget::Count(0),
            min_healthy_time: Duration::from_secs(600),
            healthy_deadline: Duration::from_secs(3600),
            progress_deadline: None,
            ready_timeout: Duration::from_secs(3600),
            expected_job_duration: Duration::from_secs(1800),
        }
    }

    /// Checks every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_waves(&self.waves)?;
        if self.max_parallel == 0 {
            return Err(SpecError::new("max_parallel", "must be at least 1"));
        }
        if self.max_parallel_per_tenant == Some(0) {
            return Err(SpecError::new(
                "max_parallel_per_tenant",
                "must be at least 1",
            ));
        }
        if let FailureBudget::Percent(p) = self.max_failures {
            if p > 100 {
                return Err(SpecError::new("max_failures", "at most 100%"));
            }
        }
        let durations = [
            ("min_healthy_time", Some(self.min_healthy_time), true),
            ("healthy_deadline", Some(self.healthy_deadline), false),
            ("progress_deadline", self.progress_deadline, false),
            ("ready_timeout", Some(self.ready_timeout), true),
            (
                "expected_job_duration",
                Some(self.expected_job_duration),
                true,
            ),
        ];
        for (field, value, zero_ok) in durations {
            match value {
                Some(d) if d.is_zero() && !zero_ok => {
                    return Err(SpecError::new(field, "must be longer than 0s"))
                }
                Some(d) if d > MAX_DURATION => {
                    return Err(SpecError::new(field, "must be at most 366 days"))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// When the next wave starts once the previous one has soaked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promotion {
    /// As soon as the soak time has passed.
    #[default]
    Auto,
    /// When an operator approves, and not before the soak time has passed.
    Manual,
}

impl FromStr for Promotion {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        match text.trim() {
            "auto" => Ok(Promotion::Auto),
            "manual" => Ok(Promotion::Manual),
            other => Err(SpecError::new(
                "promotion",
                format!("{other:?}: expected auto or manual"),
            )),
        }
    }
}

/// Which hosts a rollout covers. Each non-empty set narrows the selection (AND); within a set
/// any member matches (OR); labels must all match. Everything empty selects every host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default)]
    pub hosts: BTreeSet<String>,
    #[serde(default)]
    pub tenants: BTreeSet<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    pub fn matches(&self, host_id: &str, tenant: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(host_id))
            && (self.tenants.is_empty() || self.tenants.contains(tenant))
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

impl FromStr for Selector {
    type Err = SpecError;

    /// `all`, or comma-separated terms `tenant=T`, `host=H`, `label:K=V`
    /// (e.g. `tenant=acme,label:env=prod`).
    fn from_str(text: &str) -> Result<Self, SpecError> {
        let mut selector = Selector::default();
        if text.trim() == "all" {
            return Ok(selector);
        }
        for term in text.split(',').map(str::trim) {
            let bad = |why: &str| SpecError::new("selector", format!("{term:?}: {why}"));
            if let Some(kv) = term.strip_prefix("label:") {
                let (k, v) = kv
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| bad("expected label:KEY=VALUE"))?;
                selector.labels.insert(k.into(), v.into());
                continue;
            }
            match term.split_once('=') {
                Some(("tenant", t)) if !t.is_empty() => selector.tenants.insert(t.into()),
                Some(("host", h)) if !h.is_empty() => selector.hosts.insert(h.into()),
                _ => return Err(bad("expected all, tenant=T, host=H or label:K=V")),
            };
        }
        Ok(selector)
    }
}

/// Parses a duration such as `30m`, `4h`, `1h 30m` for `field`.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, SpecError> {
    humantime::parse_duration(text.trim())
        .map_err(|e| SpecError::new(field, format!("{text:?}: {e}")))
}

/// Versions as strict `X.Y.Z` strings.
pub(crate) mod serde_version {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let text = String::deserialize(d)?;
        parse_release(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: serde::Serializer>(
            v: &Option<Version>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Version>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| parse_release(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// Durations as humantime strings (`30m`, `1h 30m`), readable in the stored JSON.
pub(crate) mod serde_duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_narrow() {
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let all: Selector = "all".parse().unwrap();
        assert!(all.matches("web1", "acme", &BTreeMap::new()));
        let s: Selector = "tenant=acme,label:env=prod".parse().unwrap();
        assert!(s.matches("web1", "acme", &labels));
        assert!(!s.matches("web1", "acme", &BTreeMap::new()));
        assert!(!s.matches("web1", "globex", &labels));
        let hosts: Selector = "host=web1, host=web2".parse().unwrap();
        assert!(hosts.matches("web2", "x", &BTreeMap::new()));
        assert!(!hosts.matches("web3", "x", &BTreeMap::new()));
        for bad in ["", "tenant=", "env=prod", "label:=x", "label:env"] {
            let err = bad.parse::<Selector>().expect_err(bad).to_string();
            assert!(err.starts_with("selector:"), "{err}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let base = RolloutSpec::new(Version::new(1, 3, 2));
        base.validate().unwrap();
        type Change = fn(&mut RolloutSpec);
        let cases: [(Change, &str); 6] = [
            (|s| s.max_parallel = 0, "max_parallel"),
            (
                |s| s.max_parallel_per_tenant = Some(0),
                "max_parallel_per_tenant",
            ),
            (
                |s| s.max_failures = FailureBudget::Percent(101),
                "max_failures",
            ),
            (|s| s.healthy_deadline = Duration::ZERO, "healthy_deadline"),
            (
                |s| s.progress_deadline = Some(Duration::ZERO),
                "progress_deadline",
            ),
            (|s| s.waves.clear(), "waves"),
        ];
        for (change, field) in cases {
            let mut spec = base.clone();
            change(&mut spec);
            assert_eq!(spec.validate().unwrap_err().field, field);
        }
        assert_eq!(
            parse_duration("soak", "ten").unwrap_err().field,
            "soak".to_string()
        );
        assert_eq!(
            parse_duration("soak", "1h 30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!("manual".parse::<Promotion>().unwrap(), Promotion::Manual);
        assert!("later".parse::<Promotion>().is_err());
    }

    #[test]
    fn specs_round_trip_as_readable_json() {
        let mut spec = RolloutSpec::new(Version::new(1, 3, 2));
        spec.selector = "tenant=acme".parse().unwrap();
        spec.max_failures = FailureBudget::Percent(5);
        spec.progress_deadline = Some(Duration::from_secs(2 * 24 * 3600));
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains(r#""waves":["1","10%","100%"]"#), "{json}");
        assert!(json.contains(r#""target":"1.3.2""#), "{json}");
        assert!(json.contains(r#""min_healthy_time":"10m""#), "{json}");
        assert!(json.contains(r#""progress_deadline":"2days""#), "{json}");
        let back: RolloutSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        let bad = json.replace("1.3.2", "1.3.2;rm");
        assert!(serde_json::from_str::<RolloutSpec>(&bad).is_err());
        let bad = json.replace(r#""10%""#, r#""0%""#);
        assert!(serde_json::from_str::<RolloutSpec>(&bad).is_err());
    }
}
