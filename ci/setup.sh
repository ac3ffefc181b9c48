#!/usr/bin/env bash
# Installs everything fatbin's demo and tests need on a fresh Debian 12 machine, as root:
# Debian packages, rustup targets, zig, and the subordinate id ranges the test cluster's user
# namespaces need. Safe to run again: it only does what is missing.
#
# The processor matrix (every target rustup serves here, gnu ones linked with Debian's cross
# gcc) adds about 4 minutes and 3 GB to a fresh machine: 8 rustup targets (~1.1 GB),
# 6 cross gcc (~1.4 GB), zig (~0.6 GB). The first test run then builds zig's libc for six
# targets into ~/.cache/zig (~8 CPU-minutes, ~150 MB) for the C test binaries, and libc and
# compiler-rt for the zig toolchain tests' seven targets (~7 CPU-minutes with their builds,
# ~115 MB); later runs reuse it, so a CI cache of that directory saves the time.
set -euo pipefail

packages=(
  qemu-user-static        # runs foreign binaries (aarch64 slots, x86-64 CPU levels)
  openssh-server          # the test cluster's nodes
  openssh-client          # the migration transport
  sshfs                   # a real network filesystem for the shared-ROOT tests (FUSE)
  iproute2                # ip netns for test hosts
  uidmap                  # newuidmap/newgidmap: sshd inside a user namespace
  busybox                 # its ls: the node-side trust check must read it like GNU's
  hyperfine               # benchmarks
  time                    # /usr/bin/time -v for peak RSS in benchmarks
  strace                  # the fast launcher's system calls, in a launcher test
  gcc-aarch64-linux-gnu   # linker for the aarch64 gnu target
  libc6-dev-arm64-cross
  gcc-riscv64-linux-gnu   # linker for the riscv64 gnu target (its musl target does not exist)
  libc6-dev-riscv64-cross
  # Linkers and qemu sysroots (/usr/<triple>) for the other gnu targets rustup serves.
  gcc-i686-linux-gnu
  libc6-dev-i386-cross
  gcc-arm-linux-gnueabihf # armv7 and thumbv7neon gnueabihf
  libc6-dev-armhf-cross
  gcc-powerpc64le-linux-gnu
  libc6-dev-ppc64el-cross
  gcc-powerpc64-linux-gnu # big-endian
  libc6-dev-ppc64-cross
  gcc-powerpc-linux-gnu   # 32-bit big-endian
  libc6-dev-powerpc-cross
  gcc-s390x-linux-gnu
  libc6-dev-s390x-cross
  binutils                # readelf, to check identification against an independent reader
  python3                 # used by shim tests (subprocess / execvp)
  python3-pip             # installs zig (PyPI ziglang)
  findutils
)
# Every Linux target whose standard library rustup serves here (the rest are 404s: the other
# musl targets, soft-float armv7, loongarch64, sparc64, mips, armv6, x32).
targets=(
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  aarch64-unknown-linux-gnu
  i686-unknown-linux-musl
  i686-unknown-linux-gnu
  riscv64gc-unknown-linux-gnu
  armv7-unknown-linux-gnueabihf
  thumbv7neon-unknown-linux-gnueabihf
  powerpc64le-unknown-linux-gnu
  powerpc64-unknown-linux-gnu
  powerpc-unknown-linux-gnu
  s390x-unknown-linux-gnu
)
# zig, the C cross compiler for processors rustup does not serve (`python3 -m ziglang cc`).
# Pinned: the tests check exact ELF header flags of what it produces.
zig_version=0.17.1
# cargo-zigbuild, what ci/bench-zig.sh times `cargo fatbin build --toolchain zig` against.
zigbuild_version=0.24.0

say() { printf '\033[1;32m%12s\033[0m %s\n' "$1" "$2" >&2; }

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say Installing "Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# A unit test checks that every package name `cargo fatbin doctor` suggests exists, which
# needs Debian's package lists even when every package above is installed already.
if [ -z "$(apt-cache pkgnames gcc-s390x-linux-gnu 2>/dev/null)" ]; then
  say Updating "Debian package lists"
  "${sudo[@]}" apt-get update -qq
fi

installed=$(rustup target list --installed)
missing_targets=()
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || missing_targets+=("$t")
done
if [ ${#missing_targets[@]} -gt 0 ]; then
  say Installing "rustup targets ${missing_targets[*]}"
  rustup target add "${missing_targets[@]}" >/dev/null
fi

if [ "$(python3 -m ziglang version 2>/dev/null)" != "$zig_version" ]; then
  say Installing "zig $zig_version (PyPI ziglang)"
  # Debian 12's pip refuses to install beside apt's packages unless told (PEP 668).
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    "ziglang==$zig_version"
fi
if [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $zigbuild_version" ]; then
  say Installing "cargo-zigbuild $zigbuild_version (PyPI cargo-zigbuild)"
  # --no-deps: it would otherwise bring its own newest ziglang over the pinned one.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --no-deps "cargo-zigbuild==$zigbuild_version"
fi

# sshd inside an unprivileged user namespace calls setgroups/setuid for privilege separation, so
# the namespace must map more than one id: give root a subordinate range.
for f in /etc/subuid /etc/subgid; do
  if ! grep -q '^root:' "$f" 2>/dev/null; then
    say Configuring "$f: root:100000:65536"
    echo 'root:100000:65536' | "${sudo[@]}" tee -a "$f" >/dev/null
  fi
done

# Slurm and MUNGE for the Slurm tests. The test cluster starts its own munged, slurmctld and
# slurmd with private keys, ports and state (tests/src/slurm.rs), so the packages' services must
# not start: a policy-rc.d answering 101 ("action forbidden") makes the packages' postinst skip
# starting them, through invoke-rc.d and deb-systemd-invoke alike. One that is already in place
# (a container's) is left alone.
slurm_packages=(slurmctld slurmd slurm-client munge)
slurm_missing=()
for p in "${slurm_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || slurm_missing+=("$p")
done
if [ ${#slurm_missing[@]} -gt 0 ]; then
  say Installing "Debian packages: ${slurm_missing[*]} (services not started)"
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  "${sudo[@]}" apt-get update -qq
  status=0
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${slurm_missing[@]}" >/dev/null || status=$?
  if [ "$own_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
  [ "$status" = 0 ] || exit "$status"
fi

# sshd refuses to start without its privilege-separation directory.
"${sudo[@]}" mkdir -p /run/sshd
say Ready "packages, rustup targets, zig and id maps are in place"
