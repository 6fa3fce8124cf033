//! `control/queuelifetime`: read by [`qcommon::lifetime`] (one reader for
//! every tool, the way qmail-send reads it); this module names it for
//! qstat's breakdown.

pub use qcommon::lifetime::*;
