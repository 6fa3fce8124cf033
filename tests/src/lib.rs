//! `qtests`: test support for the qmail queue tools.
//!
//! - [`builder`] makes realistic, healthy practice queues, numbered exactly
//!   as qmail numbers messages (by the inode of the mess file), from a seed.
//! - [`damage`] breaks a built queue in one of the ways real queues break
//!   (copied to another filesystem, lost buckets, orphans, traps...).
//! - [`snapshot`](mod@snapshot) records a directory tree without following links, to
//!   prove that a run changed nothing (or what it changed), and maps
//!   messages by content to compare queues across renumbering.
//! - [`json`] checks the tools' `--json` output strictly.
//! - [`rng`] is the small seeded generator everything random here uses.
//! - [`content`] holds the pools of addresses and the message text
//!   generator the builder uses (its constants name the flood sender and
//!   the local domain, for tests of qstat's top lists).
//!
//! The tools' integration tests share the rest (each imports
//! [`prelude`]'s module for its tool):
//!
//! - [`runner`] finds a tool's binary beside the test executable and runs
//!   it with a time limit, its peak memory measured.
//! - [`stand_in`] is the stand-in qmail-send.
//! - [`mount`] makes tmpfs and loop-device mounts, undone on drop.
//! - [`root`] says whether we run as root and prints the skip line.
//! - [`ids`] holds qmail's ids for practice queues; [`scratch`] the
//!   scratch directories; [`files`] reads queue files safely.
//! - [`fixture`] and [`oracle`] are qfixq's fixtures and the repair
//!   policy's expected outcome; [`handmade`] makes small queues by hand
//!   for qkillns; [`qmail_qstat`] holds qstat's command and qmail-qstat.
//!
//! The `qbuild` binary drives the builder from the command line. This crate
//! writes with plain `std::fs` calls: it builds queues in scratch
//! directories and is no part of any repair path.

#![warn(missing_docs)]

pub mod builder;
pub mod content;
pub mod damage;
pub mod files;
pub mod fixture;
pub mod handmade;
pub mod ids;
pub mod json;
pub mod mount;
pub mod oracle;
pub mod practice;
pub mod prelude;
pub mod qmail_qstat;
pub mod rng;
pub mod root;
pub mod runner;
pub mod scratch;
pub mod snapshot;
pub mod stand_in;

pub use builder::{
    build_queue, message_path, BuildSpec, BuiltMessage, BuiltQueue, BuiltState, Counts, StateMix, Where,
};
pub use damage::{apply_damage, Damage, DamageReport};
pub use snapshot::{messages_by_content, snapshot, snapshot_light, Snapshot};
