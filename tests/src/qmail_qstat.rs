//! qstat's test support: the qstat command with a fixed environment,
//! practice queues in a qmail home, and qmail-qstat's own script to
//! compare counts with.

use std::path::Path;
use std::process::Output;

use crate::runner::tool;
use crate::{build_queue, BuildSpec, BuiltQueue};

/// A fixed "now" for built queues' birth times.
pub const NOW: i64 = 1_700_000_000;

/// The qstat binary, with a fixed environment.
pub fn qstat() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(tool("qstat"));
    c.env("LC_ALL", "C").env_remove("POSIXLY_CORRECT");
    c
}

/// Runs qstat with `args` on the queue at `queue`.
pub fn run(queue: &Path, args: &[&str]) -> Output {
    qstat().arg("--queue").arg(queue).args(args).output().expect("run qstat")
}

/// stdout as text.
pub fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

/// stderr as text (lossy).
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds `messages` messages at `dir/queue` (qmail's home is `dir`).
pub fn build(dir: &Path, messages: usize, big_todo: bool, seed: u64) -> BuiltQueue {
    let spec = BuildSpec { messages, big_todo, seed, now: NOW, ..BuildSpec::default() };
    build_queue(&dir.join("queue"), &spec).expect("build queue")
}

/// qmail-qstat as notqmail ships it, with the big-todo patch's test of
/// `queue/todo/0`, run in qmail's home `home` with the real sh, find,
/// echo, wc and expr.
pub const QMAIL_QSTAT: &str = r#"cd "$1" || exit 111
messdirs=`echo queue/mess/* | wc -w`
messfiles=`find queue/mess/* -print | wc -w`
if test -d "queue/todo/0"
then
tododirs=`echo queue/todo/* | wc -w`
todofiles=`find queue/todo/* -print | wc -w`
else
tododirs=`echo queue/todo | wc -w`
todofiles=`find queue/todo -print | wc -w`
fi
echo messages in queue: `expr $messfiles - $messdirs`
echo messages in queue but not yet preprocessed: `expr $todofiles - $tododirs`
"#;

/// The output of qmail-qstat's script for the queue `home/queue`.
pub fn qmail_qstat(home: &Path, locale: &str) -> Vec<u8> {
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(QMAIL_QSTAT)
        .arg("qmail-qstat")
        .arg(home)
        .env("LC_ALL", locale)
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("run sh");
    o.stdout
}
