//! What a job's state means, decided once for the agent, the controller and the CLI.

use crate::proto::{JobRecord, JobState};

impl JobState {
    /// Whether a job in this state is over: it will not change the host again. Queued, running
    /// and unspecified (a record from before states were sent) are not.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            JobState::Unspecified | JobState::Queued | JobState::Running
        )
    }
}

impl JobRecord {
    /// The job's state as its latest event says; queued before the agent said anything.
    pub fn state(&self) -> JobState {
        self.event
            .as_ref()
            .map(|e| e.state())
            .unwrap_or(JobState::Queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ends_of_a_job_are_final() {
        for state in [JobState::Unspecified, JobState::Queued, JobState::Running] {
            assert!(!state.is_final(), "{state:?}");
        }
        for state in [JobState::Succeeded, JobState::Failed, JobState::RolledBack] {
            assert!(state.is_final(), "{state:?}");
        }
    }
}
