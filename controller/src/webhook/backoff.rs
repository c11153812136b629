//! When a failed delivery is tried again: exponential backoff with jitter, for up to a day.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The wait after the first failed attempt (before jitter).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts (before jitter).
pub const MAX_RETRY: Duration = Duration::from_secs(10 * 60);
/// A delivery still failing this long after its event is given up (marked failed, kept in
/// `webhook deliveries`).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait after `failed` failed attempts (at least 1): [`FIRST_RETRY`] doubled per attempt
/// up to [`MAX_RETRY`], of which `jitter` (in `[0, 1)`) keeps between half and all, so that the
/// retries of many deliveries to a receiver that comes back do not all land at once.
pub fn retry_delay(failed: u32, jitter: f64) -> Duration {
    let doublings = failed.saturating_sub(1).min(31);
    let full = FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// When to try again a delivery of an event of `created_at` whose attempt at `now` was its
/// `failed`-th failure; `None`: give up.
pub fn next_attempt(
    created_at: Timestamp,
    failed: u32,
    now: Timestamp,
    jitter: f64,
) -> Option<Timestamp> {
    let age = now.duration_since(created_at);
    if age >= SignedDuration::try_from(GIVE_UP_AFTER).expect("a day fits") {
        return None;
    }
    let delay = SignedDuration::try_from(retry_delay(failed, jitter)).expect("minutes fit");
    Some(now.saturating_add(delay).expect("a time in range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_a_second_up_to_ten_minutes() {
        let full: Vec<u64> = (1..=12).map(|n| retry_delay(n, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(retry_delay(u32::MAX, 1.0), MAX_RETRY, "no overflow");
        assert_eq!(retry_delay(0, 1.0), FIRST_RETRY);
    }

    #[test]
    fn jitter_keeps_between_half_and_all_of_the_wait() {
        assert_eq!(retry_delay(4, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(4, 0.5), Duration::from_secs(6));
        assert!(retry_delay(4, 0.999) < Duration::from_secs(8));
        assert_eq!(retry_delay(4, 7.0), Duration::from_secs(8), "clamped");
    }

    #[test]
    fn a_delivery_is_retried_for_a_day_then_given_up() {
        let created = Timestamp::from_second(1_000_000).unwrap();
        let later = |secs: i64| {
            created
                .saturating_add(SignedDuration::from_secs(secs))
                .unwrap()
        };
        assert_eq!(
            next_attempt(created, 1, later(0), 0.0),
            Some(later(0) + SignedDuration::from_millis(500))
        );
        assert_eq!(
            next_attempt(created, 20, later(3600), 1.0),
            Some(later(3600 + 600))
        );
        let day = GIVE_UP_AFTER.as_secs() as i64;
        assert!(next_attempt(created, 150, later(day - 1), 0.3).is_some());
        assert_eq!(next_attempt(created, 151, later(day), 0.3), None);
    }
}
