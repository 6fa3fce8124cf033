//! What each tool's integration tests import in one line
//! (`use qtests::prelude::qfixq::*;`): the shared support of this crate,
//! with the names those tests use.

/// For qfixq's tests: fixtures, runs, the repair oracle.
pub mod qfixq {
    pub use crate::files::{number_of, read_nofollow, regular_files};
    pub use crate::fixture::*;
    pub use crate::ids::{IDS, IDS_ARG};
    pub use crate::oracle::*;
    pub use crate::root::{is_root, root_or_skip, skipped};
    pub use crate::scratch::scratch;
}

/// For qkillns's tests: hand-made queues, the stand-in qmail-send.
pub mod qkillns {
    pub use crate::handmade::*;
    pub use crate::root::{is_root, root_or_skip, skipped};
    pub use crate::stand_in::StandIn;
}

/// For qstat's tests: the qstat command, qmail-qstat, JSON values,
/// access times.
pub mod qstat {
    pub use crate::ids::{IDS, IDS_ARG};
    pub use crate::json::Json;
    pub use crate::qmail_qstat::*;
    pub use crate::root::{is_root, root_or_skip, skipped};
    pub use crate::snapshot::{age_atimes, atimes, Kind};
}

/// For the cross-tool tests of this crate: the runner, mounts, the
/// stand-in, the light snapshot.
pub mod cross {
    pub use crate::builder::build_practice as build;
    pub use crate::files::{hold_flock, numeric_files, read_nofollow};
    pub use crate::ids::{IDS, IDS_ARG};
    pub use crate::mount::*;
    pub use crate::root::{is_root, root_or_skip, skipped};
    pub use crate::runner::*;
    pub use crate::scratch::scratch;
    pub use crate::snapshot::{age_atimes, set_atime, snapshot_light, Compare, Kind, Snapshot};
    pub use crate::stand_in::StandIn;
}
