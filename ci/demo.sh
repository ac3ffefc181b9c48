#!/usr/bin/env bash
# The README's main job, end to end: set up this machine, build the bundled example
# (examples/cat) for three processor slots in one command, install it as a fat program with
# shims, and run it through the launcher: natively (the best slot this CPU can run), forced to
# another slot, forced to the aarch64 slot under qemu-user, migrated to an aarch64 test node
# over ssh, and placed by a real Slurm cluster on its aarch64 node. Every step checks its
# output.
#
# Usage: bash ci/demo.sh [ROOT]     (default ROOT: target/demo/root)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
demo=$repo/target/demo
root=${1:-$demo/root}

say() { printf '\n\033[1;36m==> %s\033[0m\n' "$*" >&2; }
expect() { # expect WHAT PATTERN TEXT
  if ! grep -Eq -- "$2" <<<"$3"; then
    echo "demo: $1: expected /$2/ in:" >&2
    printf '%s\n' "$3" >&2
    exit 1
  fi
}

say "Setting up this machine (packages, rustup targets)"
bash ci/setup.sh

say "Building cargo-fatbin"
cargo build --release --quiet -p cargo-fatbin -p fatbin
export PATH=$repo/target/release:$PATH

mkdir -p "$demo" && chmod 755 "$demo"
say "Installing the launcher itself as a fat program (x86_64 + aarch64) into $root"
cargo fatbin install -p fatbin --root "$root" \
  --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl
# Each node runs its own native launcher from a node-local path; here, this machine's copy.
host_slot=x86_64
[ "$(uname -m)" = aarch64 ] && host_slot=aarch64
mkdir -p "$demo/local/bin"
# Two binaries: `fatbin`, the small fast path every shim call starts, and `fatbin-full`
# beside it, which does everything else.
install -m 755 "$root/bin/fatbin/$host_slot" "$demo/local/bin/fatbin"
install -m 755 "$root/bin/fatbin-full/$host_slot" "$demo/local/bin/fatbin-full"

say "Building examples/cat for x86_64, x86_64-v3 and aarch64 in one command, and installing it"
cargo fatbin install --path examples/cat --root "$root" --launcher "$demo/local/bin/fatbin"

say "The fat program on disk"
find "$root/bin/cat" "$root/shims" -maxdepth 1 | sort
cargo fatbin inspect "$root/bin/cat"

export PATH=$root/shims:$PATH
say "Running \`cat --build\` through the shim: the launcher picks the best slot for this CPU"
out=$(cat --build)
echo "$out"
fatbin which cat --explain
if fatbin host | grep -Eq 'level.*(v3|v4)'; then
  expect "best slot on an x86-64-v3 CPU" 'x86_64 \(x86-64-v3\) build' "$out"
fi

say "It is still cat"
out=$(printf 'hello from a fat program\n' | cat)
echo "$out"
expect "stdin through the launcher" '^hello from a fat program$' "$out"

say "Forcing the baseline slot: FATBIN_ARCH=x86_64 cat --build"
out=$(FATBIN_ARCH=x86_64 cat --build)
echo "$out"
expect "forced baseline slot" 'this is the x86_64 build' "$out"

say "Forcing the aarch64 slot: runs under qemu-aarch64-static"
out=$(FATBIN_ARCH=aarch64 cat --build)
echo "$out"
expect "forced aarch64 slot" 'this is the aarch64 build' "$out"

say "Migrating: a program with only an aarch64 slot, typed here, runs on an aarch64 test node over ssh"
# A test node: a real sshd on loopback whose binfmt_misc (in its own user namespace) runs
# aarch64 binaries; this host cannot run them natively, and qemu is switched off below, so
# the request must migrate. The node sees the same ROOT (it is this machine's filesystem).
armroot=$demo/armroot
mkdir -p "$armroot" && chmod 755 "$armroot"
cargo fatbin install --path examples/cat --root "$armroot" --launcher "$demo/local/bin/fatbin" \
  --target aarch64-unknown-linux-musl
cluster=$demo/cluster
"$repo/ci/cluster/stop.sh" "$cluster" >/dev/null 2>&1 || true  # a rerun starts afresh
rm -rf "$cluster"
slurm=$demo/slurm
trap '"$repo/ci/cluster/stop.sh" "$cluster" >/dev/null 2>&1 || true
      bash "$repo/ci/cluster/slurm.sh" stop "$slurm" >/dev/null 2>&1 || true' EXIT
NO_BASHRC=1 "$repo/ci/cluster/node.sh" "$cluster" arm aarch64 >/dev/null
mkdir -p "$demo/xdg/config" "$demo/xdg/cache" "$demo/xdg/run"
chmod 700 "$demo/xdg/run"
fatbin nodes remove arm --layout "$armroot" --from layout >/dev/null 2>&1 || true  # a rerun
FATBIN_SSH_CONFIG=$cluster/ssh_config fatbin nodes add arm --ssh arm --slot aarch64 \
  --layout "$armroot" --to layout
out=$(FATBIN_SSH_CONFIG=$cluster/ssh_config XDG_CONFIG_HOME=$demo/xdg/config \
  XDG_CACHE_HOME=$demo/xdg/cache XDG_RUNTIME_DIR=$demo/xdg/run FATBIN_FALLBACK=nodes \
  FATBIN_SYSTEM_NODES=$demo/xdg/none.toml "$armroot/shims/cat" --build)
echo "$out"
expect "migrated to the aarch64 node" 'this is the aarch64 build' "$out"

say "Migrating through Slurm: the scheduler places the same program on the node whose Features say aarch64"
# A real Slurm cluster on this machine (ci/cluster/slurm.sh): munged, slurmctld and three
# slurmd, with Features x86_64-v3, x86_64 and aarch64; the aarch64 node runs aarch64 binaries
# through its own binfmt_misc. Each node runs its own launcher build from one path, $slurm/bin
# (the aarch64 node sees $slurm/bin-aarch64 there), as on a real cluster.
eval "$(bash "$repo/ci/cluster/slurm.sh" start "$slurm")"
for pair in "x86_64 $slurm/bin" "aarch64 $slurm/bin-aarch64"; do
  read -r slot dir <<<"$pair"
  install -m 755 "$root/bin/fatbin/$slot" "$dir/fatbin"
  install -m 755 "$root/bin/fatbin-full/$slot" "$dir/fatbin-full"
done
fatbin nodes remove site --layout "$armroot" --from layout >/dev/null 2>&1 || true  # a rerun
fatbin nodes add site --slurm --slot aarch64 --launcher "$slurm/bin/fatbin" \
  --layout "$armroot" --to layout
sinfo --Node --format='%N %T %f'
out=$(XDG_CONFIG_HOME=$demo/xdg/config XDG_CACHE_HOME=$demo/xdg/cache \
  XDG_RUNTIME_DIR=$demo/xdg/run FATBIN_FALLBACK=slurm FATBIN_SYSTEM_NODES=$demo/xdg/none.toml \
  "$armroot/shims/cat" --build)
echo "$out"
expect "placed by Slurm on the aarch64 node" 'this is the aarch64 build' "$out"
out=$(printf 'through srun\n' | XDG_CONFIG_HOME=$demo/xdg/config XDG_CACHE_HOME=$demo/xdg/cache \
  XDG_RUNTIME_DIR=$demo/xdg/run FATBIN_FALLBACK=slurm FATBIN_SYSTEM_NODES=$demo/xdg/none.toml \
  "$armroot/shims/cat")
expect "stdin through Slurm" '^through srun$' "$out"
squeue --states=all --format='%i %j %N %T' | head -5
bash "$repo/ci/cluster/slurm.sh" stop "$slurm"
unset SLURM_CONF

say "Verifying the whole layout (checksums, headers versus slot names, permissions)"
cargo fatbin verify "$root"

say "Done: put $root/shims on PATH and type \`cat\` on any node"
