//! `qcommon`: what the qmail queue tools share — the queue's layout, the
//! symlink-safe file layer, envelope codecs, the streaming scanner, the
//! message model every tool reads a scanned message through, locks
//! and process checks, the session through which a tool opens a queue
//! ([`session`]), the mutator through which every change goes, and
//! safe removal and quarantine. The library never prints and never exits,
//! but for the progress line a tool asks for ([`progress`]).

pub mod error;
pub mod safe_fs;

pub use error::{Error, Result};
pub mod cli;
pub mod descriptors;
pub mod envelope;
pub mod fault;
pub mod human;
pub mod interrupt;
pub mod json;
pub mod layout;
pub mod lifetime;
pub mod lock;
pub mod message;
pub mod mutator;
pub mod procs;
pub mod progress;
pub mod queue;
pub mod remove;
pub mod salvaged;
pub mod scan;
pub mod session;
pub mod showctl;
pub mod spawn;
#[cfg(test)]
mod test_queue;
