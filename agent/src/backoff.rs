//! Jittered exponential backoff between reconnection attempts.

use std::time::Duration;

/// Doubles the delay after each failure up to `max`, with "full jitter" in the upper half so
/// that a fleet of agents does not reconnect in lockstep after a controller restart.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; `unit` in [0, 1) picks the jitter.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
    }

    /// The delay before the next attempt, with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// Number of failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Back to the base delay after a connection that worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let uppers: Vec<u64> = (0..9).map(|_| b.next_with(0.999_999).as_secs()).collect();
        assert_eq!(uppers, [0, 1, 3, 7, 15, 31, 59, 59, 59]);
        b.reset();
        assert_eq!(b.next_with(0.0), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_within_half_to_full_ceiling() {
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(60));
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(60),
                "{d:?}"
            );
        }
    }
}
