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
//! The `qbuild` binary drives all of this from the command line. This crate
//! writes with plain `std::fs` calls: it builds queues in scratch
//! directories and is no part of any repair path.

#![warn(missing_docs)]

pub mod builder;
pub mod content;
pub mod damage;
pub mod json;
pub mod practice;
pub mod rng;
pub mod snapshot;

pub use builder::{
    build_queue, message_path, BuildSpec, BuiltMessage, BuiltQueue, BuiltState, Counts, StateMix, Where,
};
pub use damage::{apply_damage, Damage, DamageReport};
pub use snapshot::{messages_by_content, snapshot, Snapshot};
