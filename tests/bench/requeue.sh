#!/bin/sh
# Benchmark (not a test): `qfixq requeue live` per message, next to a
# plain loop (python3) that runs the same stand-in qmail-queue once per
# message with the same message files and envelopes prepared in advance.
# Usage: tests/bench/requeue.sh [MESSAGES] [SCRATCH_DIR] [fsync]   (as root; release build)
# With a third argument `fsync` the stand-in writes and fsyncs the message
# and the envelope as the real qmail-queue does (in SCRATCH_DIR/spool).
# Prints the wall time of each and the ratio. The stand-in is the perl
# recorder of qfixq/tests/requeue.rs without the record (it reads both
# descriptors to the end and exits 0), so both sides pay the same
# process start and the same reads.
set -eu
N=${1:-2000}
D=${2:-/dev/shm/qfixq-bench-requeue}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$HERE/target/release
(cd "$HERE" && cargo build -q --release -p qfixq -p qtests)
rm -rf "$D"; mkdir -p "$D/home/bin"
cat > "$D/home/bin/qmail-queue" <<'PERL'
#!/usr/bin/perl
binmode STDIN; my $m = do { local $/; <STDIN> };
open(my $e, '<&=', 1) or exit 54; binmode $e; my $v = do { local $/; <$e> };
exit 54 unless defined $v && $v =~ /\0\0\z/;
if ($ENV{QQ_FSYNC}) {
    # As qmail-queue: the message and the envelope written and fsynced.
    use IO::Handle;
    my $s = "$ENV{QQ_FSYNC}/$$";
    for my $x (["m", $m], ["e", $v]) {
        open(my $f, '>', "$s.$x->[0]") or exit 53; print $f $x->[1]; $f->flush; $f->sync or exit 53; close $f;
    }
    unlink "$s.m", "$s.e";
}
exit 0;
PERL
chmod 755 "$D/home/bin/qmail-queue"
if [ "${3:-}" = fsync ]; then mkdir -p "$D/spool"; QQ_FSYNC=$D/spool; export QQ_FSYNC; fi
build() {
    "$BIN/qbuild" --out "$D/src" --messages "$N" --split 23 --seed 3 --force >/dev/null
}
# The baseline: envelopes prepared first (not timed), then the loop.
build
python3 - "$D" <<'PY'
import os, sys, subprocess, time, glob
d = sys.argv[1]; q = d + "/src/queue"; qq = d + "/home/bin/qmail-queue"
items = []
def recs(p):
    try: data = open(p, 'rb').read()
    except FileNotFoundError: return []
    return [r for r in data.split(b'\0') if r]
for mess in glob.glob(q + "/mess/*/*"):
    b, n = mess.split('/')[-2:]
    todo = q + "/todo/" + n
    if os.path.exists(todo):
        r = recs(todo); s = [x[1:] for x in r if x[:1] == b'F'][0]; t = [x[1:] for x in r if x[:1] == b'T']
    else:
        if os.path.exists(q + "/bounce/" + n): continue
        info = open(q + "/info/%s/%s" % (b, n), 'rb').read(); s = info[1:-1]
        t = [x[1:] for p in ("local", "remote") for x in recs(q + "/%s/%s/%s" % (p, b, n)) if x[:1] == b'T']
    if t: items.append((mess, b'F' + s + b'\0' + b''.join(b'T' + x + b'\0' for x in t) + b'\0'))
t0 = time.monotonic()
for mess, env in items:
    r, w = os.pipe()
    with open(mess, 'rb') as f:
        p = subprocess.Popen([qq], stdin=f, stdout=r)
    os.close(r); os.write(w, env); os.close(w)
    if p.wait() != 0: sys.exit("stand-in failed")
dt = time.monotonic() - t0
print("loop: %d messages, %.3f s, %.0f us/message" % (len(items), dt, dt * 1e6 / len(items)))
open(d + "/loop", "w").write("%d %f\n" % (len(items), dt))
PY
build
T0=$(date +%s.%N)
"$BIN/qfixq" requeue live --from "$D/src/queue" --qmail-home "$D/home" --split 23 -q >"$D/out" || true
T1=$(date +%s.%N)
tail -n 3 "$D/out"
read LN LT < "$D/loop"
python3 -c "
n=int('$LN'); lt=float('$LT'); qt=$T1-$T0
print('qfixq requeue live: %d messages, %.3f s, %.0f us/message; ratio to the loop %.2f' % (n, qt, qt*1e6/n, qt/lt))"
