//! Log lines about one peer at most once per interval, with the count of what was not logged:
//! a peer that fails a thousand times a second costs one line a minute, not a thousand.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Peers remembered at most; when full, everything is forgotten (and logged again).
const MAX_TRACKED: usize = 65_536;

/// When each key was last logged and how many events went unlogged since.
#[derive(Debug)]
pub struct LogThrottle<K> {
    every: Duration,
    seen: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K: Hash + Eq> LogThrottle<K> {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event of `key` at `now`; `Some(n)` when it is time to log the `n` events
    /// since the last line (this one included).
    pub fn hit(&self, key: K, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&key) {
            seen.clear();
        }
        match seen.get_mut(&key) {
            Some((at, n)) if now.saturating_duration_since(*at) < self.every => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let count = *n + 1;
                (*at, *n) = (now, 0);
                Some(count)
            }
            None => {
                seen.insert(key, (now, 0));
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let throttle = LogThrottle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(throttle.hit("a", t0), Some(1));
        assert_eq!((0..999).filter_map(|_| throttle.hit("a", t0)).count(), 0);
        assert_eq!(throttle.hit("b", t0), Some(1));
        assert_eq!(throttle.hit("a", t0 + Duration::from_secs(60)), Some(1000));
    }
}
