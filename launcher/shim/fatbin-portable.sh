#!/bin/sh
# fatbin portable shim: install it as ROOT/shims/fatbin (instead of the usual symlink to a
# node-local launcher) on clusters whose nodes have no launcher installed. Every program
# shim ROOT/shims/PROG -> fatbin then runs this script, which starts the full launcher the
# layout carries for this node's processor, ROOT/bin/fatbin-full/<slot> (install it there with
# `cargo fatbin install -p fatbin --target ...` for every processor of the cluster; the fast
# launcher `fatbin` would only hand the `run` command line over to it).
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
