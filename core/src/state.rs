//! The daemon's state, as one type: the only source of the state names that the daemon
//! writes, `status` shows and the smoke test reads.

use serde::{Deserialize, Serialize};

/// What the daemon is doing, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The primary answers; automatic promotion is armed.
    Monitoring,
    /// The primary failed at least one round; not yet the threshold.
    Suspect,
    /// The standby's own self-checks fail, or too few observers agree: rounds do not count.
    Isolated,
    /// The primary's checks fail, but replication or a witness shows it alive.
    Degraded,
    /// An operator paused automatic promotion.
    Paused,
    /// A promotion is running (or was interrupted and will resume).
    Promoting,
    /// This standby was promoted: it serves, and never promotes again.
    Promoted,
    /// A promotion halted at a step, or automatic promotion is held: an operator decides.
    Halted,
    /// This host is the primary of its pair (`[peer]`): it never promotes, and watches
    /// its standby.
    Serving,
}

impl State {
    /// Every state, in the order the SPEC lists them, then `serving` (a primary's).
    pub const ALL: [State; 9] = [
        State::Monitoring,
        State::Suspect,
        State::Isolated,
        State::Degraded,
        State::Promoting,
        State::Promoted,
        State::Halted,
        State::Paused,
        State::Serving,
    ];

    /// The name in `status`, the live state file and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Monitoring => "monitoring",
            State::Suspect => "suspect",
            State::Isolated => "isolated",
            State::Degraded => "degraded",
            State::Paused => "paused",
            State::Promoting => "promoting",
            State::Promoted => "promoted",
            State::Halted => "halted",
            State::Serving => "serving",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_serializes_as_its_name() {
        for state in State::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().to_string())
            );
            let back: State = serde_json::from_value(serde_json::json!(state.as_str())).unwrap();
            assert_eq!(back, state);
        }
    }
}
