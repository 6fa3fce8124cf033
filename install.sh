#!/bin/sh
# install.sh: build qfixq, qstat and qkillns and install them with their
# man pages, shell completions and documentation; or uninstall them.
#
#   ./install.sh [install]      build release binaries, then install
#   ./install.sh uninstall      remove exactly the files install puts in place
#   ./install.sh list           print the files install would put in place
#
# Options: --no-build (install target/release/* as they are: build as a
# user, install as root), -n / --dry-run (print the commands, run none).
#
# Where, from the environment (the usual make-style names):
#   PREFIX   /usr/local. With PREFIX=/var/qmail (or any directory holding
#            bin/qmail-send) the binaries go beside qmail's own in
#            PREFIX/bin, man pages in PREFIX/man and the documentation in
#            PREFIX/doc/qmail-queue-tools, as qmail does; the completions
#            then go under /usr/local/share, the only place the shells look.
#   DESTDIR  staging root prepended to every path (for packaging).
#   BINDIR   PREFIX/bin
#   MANDIR   PREFIX/share/man (PREFIX/man for a qmail home); pages in MANDIR/man8
#   DOCDIR   PREFIX/share/doc/qmail-queue-tools
#   DATADIR  PREFIX/share (/usr/local/share for a qmail home); completions in
#   BASHDIR  DATADIR/bash-completion/completions,
#   ZSHDIR   DATADIR/zsh/site-functions and
#   FISHDIR  DATADIR/fish/vendor_completions.d (fish reads that one only when
#            XDG_DATA_DIRS names DATADIR: else give FISHDIR=/etc/fish/completions)
#   CARGO    cargo
#   BINSRC   where the built binaries are: ${CARGO_TARGET_DIR:-target}/release
# Give uninstall the same variables as install.
set -eu

TOOLS="qfixq qstat qkillns"
DOCS="runbook.md repair.md repair-policy.md queue-format.md monitoring.md performance.md security.md"

cd "$(dirname "$0")"

action=install
build=yes
dry=no
for arg in "$@"; do
    case $arg in
    install | uninstall | list) action=$arg ;;
    --no-build) build=no ;;
    -n | --dry-run) dry=yes ;;
    -h | --help)
        sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install.sh: unknown argument: $arg (see ./install.sh --help)" >&2
        exit 16
        ;;
    esac
done

PREFIX=${PREFIX:-/usr/local}
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
if [ "$PREFIX" = /var/qmail ] || [ -e "$DESTDIR$PREFIX/bin/qmail-send" ]; then
    : "${MANDIR:=$PREFIX/man}"
    : "${DOCDIR:=$PREFIX/doc/qmail-queue-tools}"
    : "${DATADIR:=/usr/local/share}"
else
    : "${MANDIR:=$PREFIX/share/man}"
    : "${DOCDIR:=$PREFIX/share/doc/qmail-queue-tools}"
    : "${DATADIR:=$PREFIX/share}"
fi
: "${BINDIR:=$PREFIX/bin}"
: "${CARGO:=cargo}"
: "${BINSRC:=${CARGO_TARGET_DIR:-target}/release}"
: "${BASHDIR:=$DATADIR/bash-completion/completions}"
: "${ZSHDIR:=$DATADIR/zsh/site-functions}"
: "${FISHDIR:=$DATADIR/fish/vendor_completions.d}"

# Every file install puts in place, one "mode source target" a line.
manifest() {
    for t in $TOOLS; do
        echo "0755 $BINSRC/$t $BINDIR/$t"
        echo "0644 docs/man/$t.8 $MANDIR/man8/$t.8"
        echo "0644 completions/$t.bash $BASHDIR/$t"
        echo "0644 completions/$t.zsh $ZSHDIR/_$t"
        echo "0644 completions/$t.fish $FISHDIR/$t.fish"
    done
    for d in $DOCS; do
        [ -f "docs/$d" ] && echo "0644 docs/$d $DOCDIR/$d"
    done
    return 0
}

run() {
    if [ "$dry" = yes ]; then
        echo "$*"
    else
        "$@"
    fi
}

case $action in
list)
    manifest | while read -r _ _ target; do echo "$DESTDIR$target"; done
    ;;
install)
    if [ "$build" = yes ]; then
        pkgs=
        for t in $TOOLS; do pkgs="$pkgs -p $t"; done
        # shellcheck disable=SC2086 # pkgs is a list of words
        run "$CARGO" build --release --locked $pkgs
    fi
    manifest | while read -r mode source target; do
        if [ ! -f "$source" ] && [ "$dry" = no ]; then
            echo "install.sh: $source is missing (build first, or drop --no-build)" >&2
            exit 8
        fi
        run install -d -m 0755 "$DESTDIR$(dirname "$target")"
        run install -m "$mode" "$source" "$DESTDIR$target"
        [ "$dry" = yes ] || echo "installed $DESTDIR$target"
    done
    if [ "$dry" = no ] && [ -z "$DESTDIR" ]; then
        echo
        case ":$PATH:" in
        *":$BINDIR:"*) echo "Try: qfixq --version; man qfixq" ;;
        *) echo "Note: $BINDIR is not in PATH: add it (man then finds $MANDIR too), or run $BINDIR/qfixq --version; man -M $MANDIR qfixq" ;;
        esac
    fi
    ;;
uninstall)
    manifest | while read -r _ _ target; do
        if [ -e "$DESTDIR$target" ] || [ -L "$DESTDIR$target" ]; then
            run rm -f "$DESTDIR$target"
            [ "$dry" = yes ] || echo "removed $DESTDIR$target"
        fi
    done
    # The documentation folder is ours alone: remove it once empty.
    if [ -d "$DESTDIR$DOCDIR" ]; then
        run rmdir "$DESTDIR$DOCDIR" 2>/dev/null || true
    fi
    ;;
esac
