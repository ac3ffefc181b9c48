#!/bin/sh
# fatbin portable shim: install it as ROOT/shims/fatbin (instead of the usual symlink to a
# node-local launcher) on clusters whose nodes have no launcher installed. Every program
# shim ROOT/shims/PROG -> fatbin then runs this script, which starts the full launcher the
# layout carries for this node's processor, ROOT/bin/fatbin-full/<slot> (install it there with
# `cargo fatbin install -p fatbin --target ...` for every processor of the cluster; the fast
# launcher `fatbin` would only hand the `run` command line over to it).
#
# Before it execs the launcher it checks it as the launcher checks a slot (owner and modes of
# the file, its directories up to ROOT and ROOT's ancestors; docs/security.md).
#
# It costs a shell and one `ls` on every run (see docs/launcher.md for the figures against the
# node-local launcher), and argv[0] reaches the program as the shim's path rather than as
# typed: the kernel gives a `#!` script only the path it ran.
# POSIX sh only: runs under dash, busybox sh and bash.

# The shim as the kernel ran it (the PATH search result, or the path the caller gave).
shim=$0
case $shim in
    */*) shims=${shim%/*} ;;
    *) shims=. ;;
esac
root=$shims/..

# The processor, without a process where the kernel tells it in a file (Linux 6.1 and later).
{ read -r machine </proc/sys/kernel/arch; } 2>/dev/null || machine=$(uname -m)
case $machine in
    x86_64 | amd64) slot=x86_64 ;;
    aarch64 | arm64) slot=aarch64 ;;
    riscv64) slot=riscv64 ;;
    armv7l | armv8l | armv7 | armhf) slot=armv7 ;;
    i386 | i486 | i586 | i686 | x86) slot=i686 ;;
    ppc64le) slot=ppc64le ;;
    s390x) slot=s390x ;;
    *)
        echo "fatbin: this processor ($machine) is not one fatbin knows" >&2
        exit 126
        ;;
esac

launcher=$root/bin/fatbin-full/$slot
if [ ! -x "$launcher" ]; then
    echo "fatbin: no launcher for $slot in $root/bin/fatbin-full; install one with" \
        "\`cargo fatbin install -p fatbin --root ROOT --target <$slot target>\`" >&2
    exit 127
fi

# The trust rule (docs/security.md), as the launcher applies it to a slot: whoever could
# write the launcher we exec decides what every user of ROOT runs. On the real paths (cd -P):
# nothing from the launcher up to ROOT writable by group or others; above ROOT, only sticky
# directories (like /tmp) may be; owners root, the caller, or ROOT's owner (ROOT itself may
# have any owner). The real path is what runs, so a symlink cannot swap it after the check.
refuse() {
    echo "fatbin: refusing to run: $1" >&2
    exit 126
}
nl='
'
# One process for the whole check: a subshell finds the real paths (`cd -P` and `pwd -P` are
# built in), prints them, and becomes one `ls` of every level of the launcher's real path.
# `ls` sorts its operands, and in the C locale a path's prefixes sort before the longer ones,
# so after the two paths, line i is the level with i - 1 components: `/` first, the launcher
# last. Only each line's mode and owner are read; a line count other than the levels' (a
# newline in a name) is refused, never guessed.
listing=$(
    unset CDPATH
    cd -P -- "$root" || exit 1
    pwd -P
    cd -P -- bin/fatbin-full || exit 1
    q=$PWD/$slot
    case $q in *"$nl"*) exit 3 ;; esac
    printf '%s\n' "$q"
    set --
    while [ -n "$q" ]; do
        set -- "$@" "$q"
        q=${q%/*}
    done
    LC_ALL=C exec ls -ldnL -- "$@" /
)
case $? in
    0) ;;
    3) refuse "the real path of $root/bin/fatbin-full has a newline in a name" ;;
    *) exit 126 ;; # cd or ls said why
esac
# A function, so that `set --` changes its own arguments, not the program's.
check_trusted() {
    set -f
    IFS=$nl
    # shellcheck disable=SC2086 # one word per line is wanted
    set -- $1
    IFS=' '
    real_root=${1-} launcher=${2-}
    shift 2
    # Count the levels (and find ROOT among them, counted from the launcher up).
    levels=1 root_from_launcher=0
    q=$launcher
    while [ -n "$q" ]; do
        [ "$q" != "$real_root" ] || root_from_launcher=$levels
        levels=$((levels + 1))
        q=${q%/*}
    done
    [ $# = "$levels" ] ||
        refuse "cannot check the owner and modes of $launcher and the directories above it: ls listed $# lines for $levels paths (a newline in a name?)"
    fields() {
        mode=${1-} owner=${3-}
    }
    if [ "$root_from_launcher" -gt 0 ]; then
        eval "fields \${$(($# - root_from_launcher + 1))}"
    else
        # ROOT is not on the launcher's real path (bin/fatbin-full leads elsewhere): one more ls.
        # shellcheck disable=SC2046 # the fields are wanted split
        fields $(LC_ALL=C ls -ldnL -- "$real_root")
    fi
    root_owner=$owner
    me=
    i=$#
    p=$launcher
    while [ $i -gt 0 ]; do
        eval "fields \${$i}"
        case $mode in
            ????????w*) who=others ;;
            ?????w*) who='its group' ;;
            *) who= ;;
        esac
        case $p in
            "$real_root" | "$real_root"/*)
                [ -z "$who" ] || refuse "$p is writable by $who, who could replace what runs; fix it with \`chmod go-w $p\`"
                ;;
            *)
                case $mode in d????????[tT]*) who= ;; esac
                [ -z "$who" ] || refuse "${p:-/} is writable by $who and not sticky, so they could move the layout below it aside and put their own in its place; fix it with \`chmod go-w ${p:-/}\` (or \`chmod +t ${p:-/}\` for a shared directory like /tmp)"
                ;;
        esac
        # The caller's uid is asked (a process) only for an owner neither root nor ROOT's.
        [ "$p" = "$real_root" ] || [ "$owner" = 0 ] || [ "$owner" = "$root_owner" ] ||
            { [ -n "$me" ] || me=$(id -u); [ "$owner" = "$me" ]; } ||
            refuse "${p:-/} is owned by uid ${owner:-?}, which is neither root, you, nor the owner of the layout root; anyone with that uid could replace what runs (fix: chown it to the layout owner)"
        p=${p%/*}
        i=$((i - 1))
    done
    set +f
    unset IFS
}
check_trusted "$listing"

# FATBIN_ROOT, when set, beats the shim's location (docs/launcher.md, "ROOT").
prog=${shim##*/}
if [ "$prog" = fatbin ]; then
    # `fatbin ...` itself: the command line.
    if [ -n "${FATBIN_ROOT-}" ]; then
        exec "$launcher" "$@"
    fi
    exec "$launcher" --root "$root" "$@"
fi
if [ -n "${FATBIN_ROOT-}" ]; then
    exec "$launcher" run --argv0 "$shim" -- "$prog" "$@"
fi
exec "$launcher" run --root "$root" --argv0 "$shim" -- "$prog" "$@"
