//! Wave sizes and the failure budget: counts or percentages of the eligible hosts, parsed
//! from CLI strings, and how waves resolve into host counts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::spec::SpecError;

/// How far one wave reaches: a host count or a percentage of the eligible hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WaveSize {
    Count(u32),
    Percent(u8),
}

impl WaveSize {
    /// The cumulative host count this wave reaches among `eligible` hosts; percentages round
    /// up (10% of 7 hosts is 1).
    pub fn cumulative(self, eligible: usize) -> usize {
        match self {
            WaveSize::Count(n) => (n as usize).min(eligible),
            WaveSize::Percent(p) => (p as usize * eligible).div_ceil(100),
        }
    }
}

impl FromStr for WaveSize {
    type Err = String;

    /// `3` (hosts), `10%`, or `all` (= `100%`).
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(WaveSize::Percent(100));
        }
        match parse_amount(text)? {
            Amount::Count(0) => Err("a wave of 0 hosts".into()),
            Amount::Count(n) => Ok(WaveSize::Count(n)),
            Amount::Percent(0) => Err("a wave of 0%".into()),
            Amount::Percent(p) if p > 100 => Err(format!("{p}% is over 100%")),
            Amount::Percent(p) => Ok(WaveSize::Percent(p as u8)),
        }
    }
}

impl fmt::Display for WaveSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaveSize::Count(n) => write!(f, "{n}"),
            WaveSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Parses `1,10%,100%` into waves and validates them.
pub fn parse_waves(text: &str) -> Result<Vec<WaveSize>, SpecError> {
    let waves = text
        .split(',')
        .enumerate()
        .map(|(i, part)| {
            part.parse()
                .map_err(|e| SpecError::new(format!("waves[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    validate_waves(&waves)?;
    Ok(waves)
}

/// Waves are non-empty, grow (where comparable: counts with counts, percentages with
/// percentages) and end with `100%`, so a rollout always covers every selected host; the
/// selector, not the waves, limits a rollout.
pub fn validate_waves(waves: &[WaveSize]) -> Result<(), SpecError> {
    let Some(last) = waves.last() else {
        return Err(SpecError::new("waves", "at least one wave is needed"));
    };
    for (i, wave) in waves.iter().enumerate() {
        let field = || format!("waves[{i}]");
        match *wave {
            WaveSize::Count(0) | WaveSize::Percent(0) => {
                return Err(SpecError::new(field(), "a wave of 0 hosts"))
            }
            WaveSize::Percent(p) if p > 100 => {
                return Err(SpecError::new(field(), format!("{p}% is over 100%")))
            }
            _ => {}
        }
        for earlier in &waves[..i] {
            let shrinks = match (earlier, wave) {
                (WaveSize::Count(a), WaveSize::Count(b)) => b <= a,
                (WaveSize::Percent(a), WaveSize::Percent(b)) => b <= a,
                _ => false,
            };
            if shrinks {
                return Err(SpecError::new(
                    field(),
                    format!("waves are cumulative and must grow: {wave} after {earlier}"),
                ));
            }
        }
    }
    if *last != WaveSize::Percent(100) {
        return Err(SpecError::new(
            "waves",
            format!("the last wave must be 100% (or `all`), not {last}: every selected host is covered; narrow the selector instead"),
        ));
    }
    Ok(())
}

/// Per-wave host counts for `eligible` hosts (cumulative semantics applied).
///
/// Each wave reaches its cumulative target, rounded up, and takes at least one host while
/// hosts remain (so `1,10%,100%` over 7 hosts is 1, 1, 5: 10% of 7 rounds to 1, which the
/// canary already covers, so the second wave takes one more). The last wave takes all the
/// rest. Waves that would start after every host is covered are dropped.
pub fn wave_sizes(waves: &[WaveSize], eligible: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut done = 0;
    for (i, wave) in waves.iter().enumerate() {
        if done >= eligible {
            break;
        }
        let reach = if i + 1 == waves.len() {
            eligible
        } else {
            wave.cumulative(eligible).clamp(done + 1, eligible)
        };
        sizes.push(reach - done);
        done = reach;
    }
    if done < eligible {
        sizes.push(eligible - done); // an empty wave list still covers everyone
    }
    sizes
}

/// Failures a rollout tolerates: a count, or a percentage of the eligible hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FailureBudget {
    Count(u32),
    Percent(u8),
}

impl FailureBudget {
    /// Whether `failures` among `eligible` hosts exceed the budget (strictly more than the
    /// count; strictly more than the percentage, so `5%` of 7 hosts tolerates no failure).
    pub fn exceeded(self, failures: usize, eligible: usize) -> bool {
        match self {
            FailureBudget::Count(n) => failures > n as usize,
            FailureBudget::Percent(p) => failures * 100 > p as usize * eligible,
        }
    }

    /// The most failures tolerated among `eligible` hosts.
    pub fn allowed(self, eligible: usize) -> usize {
        match self {
            FailureBudget::Count(n) => n as usize,
            FailureBudget::Percent(p) => p as usize * eligible / 100,
        }
    }
}

impl FromStr for FailureBudget {
    type Err = String;

    /// `2` (failures) or `5%`.
    fn from_str(text: &str) -> Result<Self, String> {
        match parse_amount(text.trim())? {
            Amount::Count(n) => Ok(FailureBudget::Count(n)),
            Amount::Percent(p) if p > 100 => Err(format!("{p}% is over 100%")),
            Amount::Percent(p) => Ok(FailureBudget::Percent(p as u8)),
        }
    }
}

impl fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureBudget::Count(n) => write!(f, "{n}"),
            FailureBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Parses `max_failures` (`2` or `5%`).
pub fn parse_max_failures(text: &str) -> Result<FailureBudget, SpecError> {
    text.parse()
        .map_err(|e: String| SpecError::new("max_failures", e))
}

enum Amount {
    Count(u32),
    Percent(u32),
}

/// `N` or `N%`, digits only.
fn parse_amount(text: &str) -> Result<Amount, String> {
    let (digits, percent) = match text.strip_suffix('%') {
        Some(d) => (d, true),
        None => (text, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} is not a number or a percentage (N or N%)"
        ));
    }
    let n: u32 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    Ok(if percent {
        Amount::Percent(n)
    } else {
        Amount::Count(n)
    })
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                text.parse()
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.to_string()
            }
        }
    };
}
string_serde!(WaveSize);
string_serde!(FailureBudget);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_parse_and_resolve_cumulatively_rounding_up() {
        let waves = parse_waves("1,10%,100%").unwrap();
        assert_eq!(
            waves,
            [
                WaveSize::Count(1),
                WaveSize::Percent(10),
                WaveSize::Percent(100)
            ]
        );
        let cases: [(&str, usize, &[usize]); 8] = [
            ("1,10%,100%", 100, &[1, 9, 90]),
            ("1,10%,100%", 7, &[1, 1, 5]), // 10% of 7 = 1, already covered: one more
            ("1,10%,100%", 1, &[1]),
            ("1,10%,100%", 0, &[]),
            ("1,10%,50%,100%", 2, &[1, 1]),
            ("2,all", 5, &[2, 3]),
            ("5,10%,100%", 20, &[5, 1, 14]), // 10% of 20 = 2 < 5: at least one more
            ("100%", 3, &[3]),
        ];
        for (text, eligible, want) in cases {
            let got = wave_sizes(&parse_waves(text).unwrap(), eligible);
            assert_eq!(got, want, "{text} over {eligible}");
        }
        assert_eq!(WaveSize::Percent(10).cumulative(7), 1);
        assert_eq!(WaveSize::Percent(10).cumulative(11), 2);
    }

    #[test]
    fn bad_waves_name_the_wave() {
        let cases = [
            ("", "waves[0]"),
            ("1,0%,100%", "waves[1]: a wave of 0%"),
            ("0,100%", "waves[0]: a wave of 0 hosts"),
            ("1,150%", "waves[1]: 150% is over 100%"),
            ("1,x,100%", "waves[1]"),
            ("1,12.5%,100%", "waves[1]"),
            (
                "1,50%,10%,100%",
                "waves[2]: waves are cumulative and must grow",
            ),
            ("5,3,100%", "waves[1]"),
            ("1,10%", "waves: the last wave must be 100%"),
            ("1,10%,100%,100%", "waves[3]"),
        ];
        for (text, want) in cases {
            let err = parse_waves(text).expect_err(text).to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        assert!(validate_waves(&[])
            .unwrap_err()
            .to_string()
            .starts_with("waves:"));
    }

    #[test]
    fn failure_budgets_tolerate_up_to_and_pause_beyond() {
        let two = parse_max_failures("2").unwrap();
        assert!(!two.exceeded(2, 10) && two.exceeded(3, 10));
        let five = parse_max_failures("5%").unwrap();
        assert!(five.exceeded(1, 7), "5% of 7 tolerates none");
        assert!(!five.exceeded(1, 20) && five.exceeded(2, 20));
        assert_eq!((five.allowed(40), five.allowed(7)), (2, 0));
        let zero = parse_max_failures("0").unwrap();
        assert!(!zero.exceeded(0, 5) && zero.exceeded(1, 5));
        for bad in ["", "-1", "101%", "x%", "2.5%"] {
            let err = parse_max_failures(bad).expect_err(bad).to_string();
            assert!(err.starts_with("max_failures:"), "{err}");
        }
    }
}
