#!/usr/bin/env bash
# Benchmark of migration over OpenSSH (issue 5), run the same locally and in CI.
#
# A loopback cluster with one "aarch64" node (ci/cluster/node.sh: sshd in a user namespace
# whose binfmt_misc runs aarch64 binaries through qemu) and a layout whose `hello` program has
# only an aarch64 slot, so the x86_64 host must migrate it. Times, in one run:
#   warm: `ROOT/shims/hello` (launcher -> node, reused master connection), the node naming
#         its own launcher (`launcher` in nodes.toml: it checks and starts the binary)
#         vs `ssh -o ControlMaster=auto -o ControlPath=SOCK NODE ROOT/bin/hello/aarch64`
#            with a master that is already up;
#         and the same run on a node without a launcher (the wrapper's `ls` check);
#   cold: the same two with no master (every master closed before each run; the plain ssh
#         uses no multiplexing: a full handshake each time).
# Both sides run the same binary on the same node (qemu's start-up is in both).
# Prints median ratios. Goals: warm <= 1.2x, cold <= 1.1x.
#
# Needs root, hyperfine, python3, openssh-server/client, uidmap with root's subordinate ids,
# qemu-user-static (ci/setup.sh installs and configures them) and the x86_64 and aarch64 musl
# targets. Environment: RUNS (default 200) and COLD_RUNS (default 30) per round, ROUNDS
# (default 1), NO_BASHRC (default 1: the node's bash skips ~/.bashrc, so the figures measure
# the transport, not the login scripts; 0 measures with them). BASELINE: a directory holding
# another build's static `fatbin` and `fatbin-full` (for example the previous main's, `cargo
# build --release -p fatbin --target x86_64-unknown-linux-musl` in a checkout of it); it is
# timed too, in the same runs, on a copy of the layout, and its ratios are printed beside ours.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-200}
cold_runs=${COLD_RUNS:-30}
rounds=${ROUNDS:-1}
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  v=CARGO_TARGET_$(echo "$t" | tr a-z- A-Z_)_LINKER
  export "$v=${!v:-rust-lld}"
done
for tool in hyperfine python3 ssh /usr/sbin/sshd; do
  command -v "$tool" >/dev/null || { echo "bench-migrate: $tool is missing (run ci/setup.sh)" >&2; exit 1; }
done

echo "building the static launcher (x86_64) and the hello slot (aarch64), release..." >&2
cargo build --quiet --release -p fatbin --target x86_64-unknown-linux-musl \
  --target-dir "$here/target/cross" --manifest-path "$here/Cargo.toml"
cargo build --quiet --release --manifest-path "$here/tests/fixtures/probe/Cargo.toml" \
  --target aarch64-unknown-linux-musl --target-dir "$here/target/fixtures/default"
launcher=$here/target/cross/x86_64-unknown-linux-musl/release/fatbin
hello=$here/target/fixtures/default/aarch64-unknown-linux-musl/release/probe

work=$(mktemp -d /tmp/fatbin-bm.XXXXXX)
chmod 755 "$work"
cleanup() { "$here/ci/cluster/stop.sh" "$work/cluster"; rm -rf "$work"; }
trap cleanup EXIT
NO_BASHRC=${NO_BASHRC:-1} "$here/ci/cluster/node.sh" "$work/cluster" arm aarch64

root=$work/root
mkdir -p "$root/bin/hello" "$root/shims" "$work/node" "$work/config/fatbin" "$work/cache" "$work/run"
chmod 755 "$root" "$root/bin" "$root/bin/hello" "$root/shims"
cp "$launcher" "$work/node/fatbin"
cp "${launcher}-full" "$work/node/fatbin-full"
ln -s "$work/node/fatbin" "$root/shims/fatbin"
ln -s fatbin "$root/shims/hello"
cp "$hello" "$root/bin/hello/aarch64"
cat >"$root/bin/hello/fatbin.toml" <<TOML
format = 1
program = "hello"
[slots.aarch64]
target = "aarch64-unknown-linux-musl"
arch = "aarch64"
bits = 64
endian = "little"
libc = "static"
features = []
size = $(stat -c %s "$hello")
sha256 = "$(sha256sum "$hello" | cut -d' ' -f1)"
TOML
# The inventory is each layout's own ROOT/nodes.toml, so that a copy of the layout can
# describe the node differently (without a launcher there; a baseline that predates the key).
cat >"$root/nodes.toml" <<TOML
[nodes.arm]
ssh = "arm"
slots = ["aarch64"]
launcher = "$work/node/fatbin"
TOML
nroot=$work/no-launcher-root
cp -a "$root" "$nroot"
grep -v '^launcher' "$root/nodes.toml" >"$nroot/nodes.toml"

export FATBIN_SSH_CONFIG=$work/cluster/ssh_config XDG_CONFIG_HOME=$work/config \
  XDG_CACHE_HOME=$work/cache XDG_RUNTIME_DIR=$work/run FATBIN_FALLBACK=nodes \
  FATBIN_SYSTEM_NODES=$work/none.toml
cfg=$work/cluster/ssh_config
sock=$work/plain.sock
"$root/shims/hello" >/dev/null </dev/null   # sanity: migrates, opens our master
"$nroot/shims/hello" >/dev/null </dev/null

# The baseline launcher, if any: the same layout under another ROOT whose shims lead to it.
warm_base=() cold_base=()
if [ -n "${BASELINE:-}" ]; then
  broot=$work/base-root
  mkdir -p "$work/base-node"
  cp "$BASELINE/fatbin" "$BASELINE/fatbin-full" "$work/base-node/"
  cp -a "$nroot" "$broot"
  rm "$broot/shims/fatbin"
  ln -s "$work/base-node/fatbin" "$broot/shims/fatbin"
  "$broot/shims/hello" >/dev/null </dev/null   # sanity: the baseline migrates too
  warm_base=(-n "baseline migrated (warm)" "$broot/shims/hello")
  cold_base=(-n "baseline migrated (cold)" "$broot/shims/hello </dev/null")
fi

plain_warm="ssh -F $cfg -o ControlMaster=auto -o ControlPath=$sock -o ControlPersist=600 arm $root/bin/hello/aarch64"
plain_cold="ssh -F $cfg -o ControlMaster=no -o ControlPath=none arm $root/bin/hello/aarch64"
close_ours="$work/node/fatbin nodes disconnect arm --layout $root"

# In rounds (ROUNDS, default 1): each round times every command, ratios are taken within a
# round (load that comes and goes hits both sides alike), and the median round is reported.
for round in $(seq "$rounds"); do
  [ "$rounds" = 1 ] || echo "round $round of $rounds..." >&2
  hyperfine -N --style basic --warmup 10 --runs "$runs" \
    --export-json "$work/warm-$round.json" \
    -n "migrated (warm)" "$root/shims/hello" \
    -n "ssh ControlMaster (warm)" "$plain_warm" \
    -n "migrated, no node launcher (warm)" "$nroot/shims/hello" "${warm_base[@]}" </dev/null
  hyperfine --style basic --warmup 2 --runs "$cold_runs" \
    --export-json "$work/cold-$round.json" \
    --prepare "$close_ours >/dev/null 2>&1 || true" \
    -n "migrated (cold)" "$root/shims/hello </dev/null" \
    -n "ssh full handshake (cold)" "$plain_cold </dev/null" "${cold_base[@]}" </dev/null
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def medians(kind, r):
    res = json.load(open(f"{work}/{kind}-{r}.json"))["results"]
    return [(x["command"], x["median"] * 1000) for x in res]
goals = {"warm": 1.2, "cold": 1.1}
ok = True
for kind in ["warm", "cold"]:
    per_round = [medians(kind, r) for r in range(1, rounds + 1)]
    names = [n for n, _ in per_round[0]]
    ms = {n: statistics.median(dict(p)[n] for p in per_round) for n in names}
    ratio = {n: statistics.median(dict(p)[n] / p[1][1] for p in per_round) for n in names}
    ours, theirs, *base = names
    ok &= ratio[ours] <= goals[kind]
    print(f"{kind}: migrated {ms[ours]:.1f} ms vs {theirs} {ms[theirs]:.1f} ms = "
          f"{ratio[ours]:.2f}x (goal <= {goals[kind]}x)")
    for name in base:
        mine = statistics.median(dict(p)[ours] / dict(p)[name] for p in per_round)
        print(f"{kind}: {name} {ms[name]:.1f} ms = {ratio[name]:.2f}x; migrated / this = {mine:.2f}x")
    if rounds > 1:
        print(f"{kind}: per-round ratios " + " ".join(f"{dict(p)[ours] / p[1][1]:.2f}" for p in per_round))
print("goals met" if ok else "goals NOT met")
PY
