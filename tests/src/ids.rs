//! qmail's ids for the practice queues (no such users exist here), as
//! [`Ids`] and as the tools' `--ids` argument.

use qcommon::queue::Ids;

/// qmail's ids: qmailq, qmails, qmailr and the qmail group.
pub const IDS: Ids = Ids { qmailq: 7001, qmails: 7002, qmailr: 7003, qmail_gid: 7004 };
/// The same ids as the tools' `--ids` wants them.
pub const IDS_ARG: &str = "7001:7002:7003:7004";
