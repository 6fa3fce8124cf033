//! The one stand-in for qmail-send (and for the other qmail processes the
//! tools look for): a small python3 (else perl) process that holds an
//! exclusive flock on a file (lock/sendmutex, when given), calls itself
//! `name` (when given; through /proc/self/comm, or perl's `$0`), works in
//! a given directory (when given: a qmail-send of another queue), and
//! sleeps until killed. SIGALRM (qmail-send's "retry now", which
//! `qkillns --expire` sends) is ignored, or counted in a log when the
//! test checks it was sent. Killed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runner::which;

/// A running stand-in process.
#[derive(Debug)]
pub struct StandIn {
    child: Child,
    /// Holds the ready marker and, when alarms are counted, their log;
    /// removed on drop.
    _dir: tempfile::TempDir,
    /// Where each SIGALRM appends a line, when counted.
    log: Option<PathBuf>,
}

const PYTHON: &str = r#"
import fcntl, os, signal, sys, time
lock, name, ready, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def alarm(signum, frame):
    with open(log, 'a') as f:
        f.write('ALRM\n')
signal.signal(signal.SIGALRM, signal.SIG_IGN if log == '-' else alarm)
if name != '-':
    with open('/proc/self/comm', 'w') as f:
        f.write(name)
fd = None
if lock != '-':
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
open(ready, 'w').close()
while True:
    time.sleep(1)
"#;

const PERL: &str = r#"
use Fcntl qw(:flock);
my ($lock, $name, $ready, $log) = @ARGV;
if ($log eq '-') { $SIG{ALRM} = 'IGNORE'; }
else { $SIG{ALRM} = sub { open(my $f, '>>', $log) or die; print $f "ALRM\n"; close $f; }; }
$0 = $name if $name ne '-';
our $L;
if ($lock ne '-') { open($L, '<', $lock) or die "open: $!"; flock($L, LOCK_EX) or die "flock: $!"; }
open(my $r, '>', $ready) or die; close $r;
while (1) { sleep 1; }
"#;

impl StandIn {
    /// Starts one that ignores SIGALRM; `None` when neither python3 nor
    /// perl is there.
    pub fn start(lock: Option<&Path>, name: Option<&str>, cwd: Option<&Path>) -> Option<StandIn> {
        StandIn::spawn(lock, name, cwd, false)
    }

    /// Starts one that counts the SIGALRMs it gets (see [`StandIn::alarms`]).
    pub fn counting_alarms(lock: Option<&Path>, name: Option<&str>) -> Option<StandIn> {
        StandIn::spawn(lock, name, None, true)
    }

    fn spawn(lock: Option<&Path>, name: Option<&str>, cwd: Option<&Path>, count_alarms: bool) -> Option<StandIn> {
        let dir = tempfile::Builder::new().prefix("qtests-stand-in.").tempdir().ok()?;
        let ready = dir.path().join("ready");
        let log = count_alarms.then(|| dir.path().join("alarms"));
        let mut c = if which("python3").is_some() {
            let mut c = Command::new("python3");
            c.arg("-c").arg(PYTHON);
            c
        } else if which("perl").is_some() {
            let mut c = Command::new("perl");
            c.arg("-e").arg(PERL);
            c
        } else {
            return None;
        };
        let dash = || Path::new("-").to_path_buf();
        c.arg(lock.map_or_else(dash, Path::to_path_buf))
            .arg(name.unwrap_or("-"))
            .arg(&ready)
            .arg(log.clone().unwrap_or_else(dash))
            .stdin(Stdio::null());
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        let mut child = c.spawn().ok()?;
        let start = Instant::now();
        while !ready.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("stand-in exited early: {st}");
            }
            assert!(start.elapsed() < Duration::from_secs(20), "stand-in did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(StandIn { child, _dir: dir, log })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name as the kernel has it.
    pub fn comm(&self) -> String {
        fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap_or_default().trim().to_string()
    }

    /// Waits up to a few seconds for `n` SIGALRMs to be logged; returns how
    /// many were. Panics unless started with [`StandIn::counting_alarms`].
    pub fn alarms(&self, n: usize) -> usize {
        let log = self.log.as_ref().expect("a stand-in started with StandIn::counting_alarms");
        let start = Instant::now();
        loop {
            let got = fs::read_to_string(log).map(|s| s.lines().count()).unwrap_or(0);
            if got >= n || start.elapsed() > Duration::from_secs(5) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
