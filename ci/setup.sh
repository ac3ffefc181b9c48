#!/usr/bin/env bash
# Installs everything fatbin's demo and tests need on a fresh Debian 12 machine, as root:
# Debian packages, rustup targets, and the subordinate id ranges the test cluster's user
# namespaces need. Safe to run again: it only does what is missing.
set -euo pipefail

packages=(
  qemu-user-static        # runs foreign binaries (aarch64 slots, x86-64 CPU levels)
  openssh-server          # the test cluster's nodes
  openssh-client          # the migration transport
  iproute2                # ip netns for test hosts
  uidmap                  # newuidmap/newgidmap: sshd inside a user namespace
  hyperfine               # benchmarks
  time                    # /usr/bin/time -v for peak RSS in benchmarks
  gcc-aarch64-linux-gnu   # linker for the aarch64 gnu target
  libc6-dev-arm64-cross
  gcc-riscv64-linux-gnu   # linker for the riscv64 gnu target (its musl target does not exist)
  libc6-dev-riscv64-cross
  binutils                # readelf, to check identification against an independent reader
  python3                 # used by shim tests (subprocess / execvp)
  findutils
)
targets=(
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  aarch64-unknown-linux-gnu
  riscv64gc-unknown-linux-gnu
)

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
for t in "${targets[@]}"; do
  if ! grep -qx "$t" <<<"$installed"; then
    say Installing "rustup target $t"
    rustup target add "$t" >/dev/null
  fi
done

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
say Ready "packages, rustup targets and id maps are in place"
