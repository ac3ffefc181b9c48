#!/usr/bin/env bash
# Benchmark of `cargo fatbin build` (issue 3), run the same locally and in CI.
#
# Compares, in one hyperfine run each, on the same crate (tests/fixtures/probe, release):
#   full build: `cargo fatbin build` for three targets against
#               `cargo build --target A --target B --target C` (both from a clean target dir);
#   no-op:      the same two commands again with nothing changed.
# Both sides link the same way (rust-lld for musl, riscv64-linux-gnu-gcc for riscv64 gnu).
# Prints the mean ratios (and the median, fastest-run and CPU-time ratios, which other load on the machine
# disturbs less). Goals: full build <= 1.05, no-op <= 1.2.
#
# Needs: hyperfine, python3, rustup targets x86_64-unknown-linux-musl,
# aarch64-unknown-linux-musl, riscv64gc-unknown-linux-gnu, and gcc-riscv64-linux-gnu.
# Environment: FULL_RUNS (default 3), NOOP_RUNS (default 30).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
full_runs=${FULL_RUNS:-3}
noop_runs=${NOOP_RUNS:-30}
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl riscv64gc-unknown-linux-gnu)

for tool in hyperfine python3 riscv64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null || {
        echo "bench-build: $tool is missing (apt-get install hyperfine python3 gcc-riscv64-linux-gnu)" >&2
        exit 1
    }
done

echo "building cargo-fatbin (release)..." >&2
cargo build --quiet --release -p cargo-fatbin --manifest-path "$here/Cargo.toml"
fatbin=$here/target/release/cargo-fatbin
"$fatbin" fatbin doctor "${targets[@]/#/--target=}" >/dev/null

# The plain cargo side gets the linkers cargo fatbin would choose, so both do the same work.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc

work=$(mktemp -d /tmp/fatbin-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$here/tests/fixtures/probe"
target_args="${targets[*]/#/--target }"
cargo_cmd="cargo build --quiet --release $target_args --target-dir $work/cargo"
fatbin_cmd="$fatbin fatbin build --quiet --release $target_args --target-dir $work/fatbin"

# Fetch dependencies once so neither side pays for the network.
cargo fetch --quiet

echo "full build ($full_runs runs each, clean target dir every run)..." >&2
hyperfine --style basic --runs "$full_runs" \
    --prepare "rm -rf $work/cargo $work/fatbin" \
    --export-json "$work/full.json" \
    -n "cargo build" "$cargo_cmd" \
    -n "cargo fatbin build" "$fatbin_cmd" >&2

echo "no-op build ($noop_runs runs each)..." >&2
hyperfine --style basic -N --warmup 3 --runs "$noop_runs" \
    --export-json "$work/noop.json" \
    -n "cargo build (no-op)" "$cargo_cmd" \
    -n "cargo fatbin build (no-op)" "$fatbin_cmd" >&2

python3 - "$work/full.json" "$work/noop.json" <<'PY'
import json, sys
for path, what, goal in [(sys.argv[1], "full build", 1.05), (sys.argv[2], "no-op build", 1.2)]:
    results = json.load(open(path))["results"]
    cargo, fatbin = (r["mean"] for r in results)
    cargo_med, fatbin_med = (r["median"] for r in results)
    cargo_cpu, fatbin_cpu = (r["user"] + r["system"] for r in results)
    cargo_min, fatbin_min = (r["min"] for r in results)
    ratio = fatbin / cargo
    verdict = "meets" if ratio <= goal else "MISSES"
    print(f"{what}: cargo {cargo * 1000:.1f} ms, cargo fatbin {fatbin * 1000:.1f} ms (mean), "
          f"ratio {ratio:.3f} ({verdict} the goal <= {goal}); "
          f"median ratio {fatbin_med / cargo_med:.3f}; fastest-run ratio {fatbin_min / cargo_min:.3f}; "
          f"CPU time ratio {fatbin_cpu / cargo_cpu:.3f}")
PY
