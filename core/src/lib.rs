//! The pure core of failover-watchdog: every decision, verdict and text the program
//! makes, with no I/O. Nothing here awaits, reads a clock (times are passed in), or
//! touches a file, socket or process; the crate's dependencies are data crates only, so
//! the build enforces it. The binary crate (`failover-watchdog`) observes and acts at
//! the edges and depends on this crate, never the other way.
//!
//! - [`decide`]: the daemon's decision core (events in, actions out), with [`detect`]
//!   (counting failed rounds, the lag guard), [`verdict`] (a round's verdict, silence,
//!   the witnesses' vote) and [`cadence`] (when rounds run, their bounds, the replica's
//!   watch between them, the detection window);
//! - [`report`]: what a probe round found; [`witness`]: the witness's wire types;
//!   [`replication`]: a replica's status as its server reports it; [`role`]: a host's role;
//!   [`gtid`]: GTID positions;
//! - [`journal`]: the procedures' journals (promotion, switchover, rejoin) and their
//!   failure policies;
//! - [`alert`]: every alert and how it reads; [`status`]: what `status` derives and shows;
//!   [`readiness`]: what the smoke test's checks conclude; [`state`]: the state names.

// No function over 80 lines (clippy.toml sets the limit): a long one is split.
#![warn(clippy::too_many_lines)]

pub mod alert;
pub mod cadence;
pub mod decide;
pub mod detect;
pub mod gtid;
pub mod journal;
pub mod pairwatch;
pub mod readiness;
pub mod replication;
pub mod report;
pub mod role;
pub mod state;
pub mod status;
pub mod verdict;
pub mod witness;
