//! The wall clock at the boundaries: Unix seconds, as records and messages carry them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now (0 before 1970, `i64::MAX` past what it holds).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
