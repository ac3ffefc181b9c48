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
# It costs a shell and a `uname` on every run (about 2 ms here, against about 0.1 ms for
# the node-local launcher; see docs/launcher.md), and argv[0] reaches the program as the
# shim's path rather than as typed: the kernel gives a `#!` script only the path it ran.
# POSIX sh only: runs under dash, busybox sh and bash.

# The shim as the kernel ran it (the PATH search result, or the path the caller gave).
shim=$0
case $shim in
    */*) shims=${shim%/*} ;;
    *) shims=. ;;
esac
root=$shims/..

case $(uname -m) in
    x86_64 | amd64) slot=x86_64 ;;
    aarch64 | arm64) slot=aarch64 ;;
    riscv64) slot=riscv64 ;;
    armv7l | armv8l | armv7 | armhf) slot=armv7 ;;
    i386 | i486 | i586 | i686 | x86) slot=i686 ;;
    ppc64le) slot=ppc64le ;;
    s390x) slot=s390x ;;
    *)
        echo "fatbin: this processor ($(uname -m)) is not one fatbin knows" >&2
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
real_root=$(cd -P -- "$root" && pwd -P) || exit 126
launcher_dir=$(cd -P -- "$root/bin/fatbin-full" && pwd -P) || exit 126
launcher=$launcher_dir/$slot
# A function, so that `set --` changes its own arguments, not the program's.
check_trusted() {
    set -f
    me=$(id -u)
    # shellcheck disable=SC2046 # the fields of `ls -ldn` are wanted split
    set -- $(ls -ldnL -- "$real_root")
    root_owner=${3-}
    p=$launcher
    while :; do
        # shellcheck disable=SC2046
        set -- $(ls -ldnL -- "${p:-/}")
        case ${1-} in
            ????????w*) who=others ;;
            ?????w*) who='its group' ;;
            *) who= ;;
        esac
        case $p in
            "$real_root" | "$real_root"/*)
                [ -z "$who" ] || refuse "$p is writable by $who, who could replace what runs; fix it with \`chmod go-w $p\`"
                ;;
            *)
                case ${1-} in d????????[tT]*) who= ;; esac
                [ -z "$who" ] || refuse "${p:-/} is writable by $who and not sticky, so they could move the layout below it aside and put their own in its place; fix it with \`chmod go-w ${p:-/}\` (or \`chmod +t ${p:-/}\` for a shared directory like /tmp)"
                ;;
        esac
        [ "$p" = "$real_root" ] || [ "${3-}" = 0 ] || [ "${3-}" = "$me" ] || [ "${3-}" = "$root_owner" ] ||
            refuse "${p:-/} is owned by uid ${3-?}, which is neither root, you, nor the owner of the layout root; anyone with that uid could replace what runs (fix: chown it to the layout owner)"
        [ -n "$p" ] || break
        p=${p%/*}
    done
    set +f
}
check_trusted

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
