//! The journal of a procedure (a promotion, a switchover, a rejoin): its steps, where
//! each stands, and what a failed step means. Pure data: the runner in the binary crate
//! asks a journal for its [`Journal::next_step`], marks the step
//! [`begin`](Journal::begin) / [`finish`](Journal::finish) / [`fail`](Journal::fail),
//! and persists it (write, fsync, rename) around every step. Because a step is only ever
//! skipped when the journal says `done`, a procedure that was killed resumes at the step
//! it was in and never runs a finished step twice.
//!
//! One type, [`Journal`], generic over the [`Procedure`]: its step names, what its
//! journal records besides the steps, the shape of its file and each step's failure
//! [`Policy`] (halt, undo earlier steps, go on, or complete anyway). The promotion's
//! journal ([`promotion`], `promotion.json`) serves promotions and switchovers; the
//! rejoin's ([`rejoin`], `rejoin.json`) serves `rejoin`. Each keeps the JSON shape its
//! file always had, so existing files still load.
//!
//! Nothing here does I/O or reads a clock: times are passed in.

mod generic;
pub mod promotion;
pub mod rejoin;

pub use generic::{Outcome, Policy, Procedure, StepRecord, StepStatus};
pub use promotion::{
    DnsChange, FenceRecord, GtidPositions, PrimarySeen, Promotion, PromotionRecord, StepName,
    SwitchoverRecord, Trigger,
};
pub use rejoin::{Rejoin, RejoinRecord, RejoinStep};

/// A procedure's journal; without a parameter, a promotion's (or a switchover's),
/// `state_dir/promotion.json`, the one most code reads.
pub type Journal<P = Promotion> = generic::Journal<P>;
/// A promotion's (or a switchover's) journal.
pub type PromotionJournal = Journal<Promotion>;
/// A rejoin's journal, `state_dir/rejoin.json`.
pub type RejoinJournal = Journal<Rejoin>;

#[cfg(test)]
mod tests;
