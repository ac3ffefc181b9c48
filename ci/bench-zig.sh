#!/usr/bin/env bash
# Benchmark of `cargo fatbin build --toolchain zig` against `cargo zigbuild` (issue 9).
#
# Both build the same crate with C code (tests/fixtures/c-zlib: zlib compiled from source by
# libz-sys, and a C file of its own through the `cc` crate), release, for the same targets,
# from a clean target directory every run, in one hyperfine run. zig's own cache of compiled
# libcs (~/.cache/zig) is warmed first and shared by both sides: it is zig's, not either
# tool's, and a cold one would time zig's libc builds instead of the two tools.
# Prints the mean ratio (and the median, fastest-run and CPU-time ratios, which other load on
# the machine disturbs less). Goal: <= 1.05.
#
# Needs: hyperfine, python3, zig (PyPI ziglang) and cargo-zigbuild (PyPI cargo-zigbuild),
# both pinned in ci/setup.sh; rustup targets x86_64-unknown-linux-musl and
# aarch64-unknown-linux-musl. Environment: RUNS (default 3).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

for tool in hyperfine python3 cargo-zigbuild; do
    command -v "$tool" >/dev/null || {
        echo "bench-zig: $tool is missing (ci/setup.sh installs it)" >&2
        exit 1
    }
done

# The same zig binary for both sides: `cargo fatbin` runs `zig` from PATH, else the `ziglang`
# package's binary by its path; cargo-zigbuild prefers `python3 -m ziglang` (a Python start for
# every compiler call) when the package is installed, so it is told that binary's path
# (CARGO_ZIGBUILD_ZIG_PATH) and given a Python that fails (CARGO_ZIGBUILD_PYTHON_PATH) to make
# it use that path. The figure is then the two tools' work, not Python's start.
if ! command -v zig >/dev/null; then
    CARGO_ZIGBUILD_ZIG_PATH=$(python3 -c \
        'import os, ziglang; print(os.path.join(os.path.dirname(os.path.abspath(ziglang.__file__)), "zig"))')
    export CARGO_ZIGBUILD_ZIG_PATH
    export CARGO_ZIGBUILD_PYTHON_PATH=false
fi

echo "building cargo-fatbin (release)..." >&2
cargo build --quiet --release -p cargo-fatbin --manifest-path "$here/Cargo.toml"
fatbin=$here/target/release/cargo-fatbin
"$fatbin" fatbin doctor --toolchain zig "${targets[@]/#/--target=}" >/dev/null

work=$(mktemp -d /tmp/fatbin-bench-zig.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$here/tests/fixtures/c-zlib"
target_args="${targets[*]/#/--target }"
zigbuild_cmd="cargo zigbuild --quiet --release $target_args --target-dir $work/zigbuild"
fatbin_cmd="$fatbin fatbin build --quiet --release --toolchain zig $target_args --target-dir $work/fatbin"

# Fetch dependencies once so neither side pays for the network; warm zig's libc cache.
cargo fetch --quiet
echo "warming zig's cache..." >&2
$zigbuild_cmd
$fatbin_cmd

echo "full build ($runs runs each, clean target dir every run)..." >&2
hyperfine --style basic --runs "$runs" \
    --prepare "rm -rf $work/zigbuild $work/fatbin" \
    --export-json "$work/full.json" \
    -n "cargo zigbuild" "$zigbuild_cmd" \
    -n "cargo fatbin build --toolchain zig" "$fatbin_cmd" >&2

python3 - "$work/full.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
zigbuild, fatbin = (r["mean"] for r in results)
zigbuild_med, fatbin_med = (r["median"] for r in results)
zigbuild_cpu, fatbin_cpu = (r["user"] + r["system"] for r in results)
zigbuild_min, fatbin_min = (r["min"] for r in results)
ratio = fatbin / zigbuild
verdict = "meets" if ratio <= 1.05 else "MISSES"
print(f"full build with zig: cargo zigbuild {zigbuild:.2f} s, cargo fatbin {fatbin:.2f} s (mean), "
      f"ratio {ratio:.3f} ({verdict} the goal <= 1.05); "
      f"median ratio {fatbin_med / zigbuild_med:.3f}; fastest-run ratio {fatbin_min / zigbuild_min:.3f}; "
      f"CPU time ratio {fatbin_cpu / zigbuild_cpu:.3f}")
PY
