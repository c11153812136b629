//! Which controller the agent dials next, when its config names several: the one it is on, for
//! as long as it works (a reconnect that is not a failure, such as after a renewal, dials it
//! again); when it fails (refused connection, dropped stream), the next one in the list at
//! once; a backoff pause only after every one of them failed since one last worked. A session
//! that drops quickly does not count as working, so controllers that accept and then drop the
//! stream are not dialled in a tight loop.

/// What the session loop does after a controller failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Another controller has not been tried since the last success: dial it now.
    TryNext,
    /// Every controller failed in a row: wait the backoff delay, then start a new round.
    Pause,
}

/// The controller list and the position in it.
#[derive(Debug, Clone)]
pub struct Rotation {
    urls: Vec<String>,
    current: usize,
    /// Failures since a controller last worked (or the start).
    failed_in_row: usize,
}

impl Rotation {
    /// Starts with the first of `urls`, which the config guarantees is not empty.
    pub fn new(urls: Vec<String>) -> Self {
        assert!(!urls.is_empty(), "the config names at least one controller");
        Rotation {
            urls,
            current: 0,
            failed_in_row: 0,
        }
    }

    /// The controller to dial (or connected to).
    pub fn current(&self) -> &str {
        &self.urls[self.current]
    }

    /// The current controller held a stable session: its failure starts a new round, and the
    /// others are tried at once.
    pub fn worked(&mut self) {
        self.failed_in_row = 0;
    }

    /// The current controller failed: move on to the next one (wrapping around). Pauses once a
    /// whole round failed, so a fleet whose controllers are all down backs off as before.
    pub fn failed(&mut self) -> AfterFailure {
        self.current = (self.current + 1) % self.urls.len();
        self.failed_in_row += 1;
        if self.failed_in_row >= self.urls.len() {
            self.failed_in_row = 0;
            AfterFailure::Pause
        } else {
            AfterFailure::TryNext
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(n: usize) -> Rotation {
        Rotation::new((0..n).map(|i| format!("https://c{i}:7443")).collect())
    }

    #[test]
    fn one_controller_is_retried_after_a_pause_every_time() {
        let mut r = rotation(1);
        for _ in 0..3 {
            assert_eq!(r.failed(), AfterFailure::Pause);
            assert_eq!(r.current(), "https://c0:7443");
        }
    }

    #[test]
    fn a_failure_moves_to_the_next_and_a_full_round_pauses() {
        let mut r = rotation(3);
        assert_eq!(r.current(), "https://c0:7443");
        assert_eq!(r.failed(), AfterFailure::TryNext);
        assert_eq!(r.current(), "https://c1:7443");
        assert_eq!(r.failed(), AfterFailure::TryNext);
        assert_eq!(r.current(), "https://c2:7443");
        assert_eq!(r.failed(), AfterFailure::Pause);
        assert_eq!(r.current(), "https://c0:7443", "a new round starts over");
        assert_eq!(r.failed(), AfterFailure::TryNext);
    }

    #[test]
    fn the_one_that_works_is_kept_until_it_fails() {
        let mut r = rotation(3);
        r.failed();
        r.worked();
        assert_eq!(r.current(), "https://c1:7443");
        // Working on (and a reconnect after a renewal, which is no failure): the same one.
        r.worked();
        assert_eq!(r.current(), "https://c1:7443");
        // It fails: the others are tried at once, the first one (up again or not) included,
        // and only a full round of failures counted from the last success pauses.
        assert_eq!(r.failed(), AfterFailure::TryNext);
        assert_eq!(r.current(), "https://c2:7443");
        assert_eq!(r.failed(), AfterFailure::TryNext);
        assert_eq!(r.current(), "https://c0:7443");
        assert_eq!(r.failed(), AfterFailure::Pause);
        assert_eq!(r.current(), "https://c1:7443");
    }

    #[test]
    fn a_quick_drop_is_a_failure_so_flapping_controllers_pause() {
        let mut r = rotation(2);
        // c0 refuses, c1 takes the stream and drops it at once (never `worked`).
        assert_eq!(r.failed(), AfterFailure::TryNext);
        assert_eq!(r.failed(), AfterFailure::Pause);
    }

    #[test]
    fn a_success_mid_round_starts_the_count_again() {
        let mut r = rotation(2);
        assert_eq!(r.failed(), AfterFailure::TryNext);
        r.worked();
        assert_eq!(r.current(), "https://c1:7443");
        assert_eq!(r.failed(), AfterFailure::TryNext, "c0 not tried since");
        assert_eq!(r.current(), "https://c0:7443");
    }
}
