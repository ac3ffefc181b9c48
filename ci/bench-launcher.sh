#!/usr/bin/env bash
# Benchmark of the launcher's fast path (issue 4), run the same locally and in CI.
#
# Times, in one hyperfine run: direct exec of a static hello slot; the same slot through its
# shim and the launcher; and a `#!/bin/sh` wrapper that execs `dir/$(uname -m)` (the usual
# hand-made alternative). Prints the median ratios against direct exec and the launcher's
# peak RSS. Goals: launcher median <= 1.5x direct; peak RSS <= 2 MiB.
#
# Needs: hyperfine, GNU time (`apt-get install hyperfine time`), python3, the
# x86_64-unknown-linux-musl target (`rustup target add x86_64-unknown-linux-musl`).
# Environment: RUNS (default 2000), WARMUP (default 200).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-2000}
warmup=${WARMUP:-200}
target=x86_64-unknown-linux-musl
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld}

for tool in hyperfine python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-launcher: $tool is missing (apt-get install hyperfine time python3)" >&2; exit 1; }
done

echo "building the static launcher and the hello slot ($target, release)..." >&2
cargo build --quiet --release -p fatbin --target "$target" --target-dir "$here/target/cross" \
    --manifest-path "$here/Cargo.toml"
cargo build --quiet --release --manifest-path "$here/tests/fixtures/probe/Cargo.toml" \
    --target "$target" --target-dir "$here/target/fixtures/default"
launcher=$here/target/cross/$target/release/fatbin
hello=$here/target/fixtures/default/$target/release/probe

work=$(mktemp -d /tmp/fatbin-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
root=$work/root
mkdir -p "$root/bin/hello" "$root/shims" "$work/node" "$work/wrap"
chmod 755 "$root" "$root/bin" "$root/bin/hello" "$root/shims"
# The node-local launcher, and the shims exactly as an install writes them.
cp "$launcher" "$work/node/fatbin"
ln -s "$work/node/fatbin" "$root/shims/fatbin"
ln -s fatbin "$root/shims/hello"
cp "$hello" "$root/bin/hello/x86_64"
sha=$(sha256sum "$hello" | cut -d' ' -f1)
size=$(stat -c %s "$hello")
cat >"$root/bin/hello/fatbin.toml" <<TOML
format = 1
program = "hello"
[slots.x86_64]
target = "$target"
arch = "x86_64"
bits = 64
endian = "little"
libc = "static"
features = []
size = $size
sha256 = "$sha"
TOML
cat >"$work/wrap/hello" <<'SH'
#!/bin/sh
exec "$(dirname "$0")/../root/bin/hello/$(uname -m)" "$@"
SH
chmod 755 "$work/wrap/hello"

# Sanity: all three run the same program.
for cmd in "$root/bin/hello/x86_64" "$root/shims/hello" "$work/wrap/hello"; do
    "$cmd" | grep -q '^probe arch=x86_64' || { echo "bench-launcher: $cmd does not run the hello slot" >&2; exit 1; }
done

hyperfine -N --warmup "$warmup" --runs "$runs" --export-json "$work/times.json" \
    -n direct "$root/bin/hello/x86_64" \
    -n launcher "$root/shims/hello" \
    -n sh-wrapper "$work/wrap/hello" >&2

maxrss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rss_direct=$(maxrss "$root/bin/hello/x86_64")
rss_shim=$(maxrss "$root/shims/hello")
# Everything the launcher does before execve, without the program: its own peak.
rss_launcher=$(maxrss "$root/shims/fatbin" which hello)

python3 - "$work/times.json" "$rss_direct" "$rss_shim" "$rss_launcher" "$(stat -c %s "$launcher")" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rss_direct, rss_shim, rss_launcher, size = (int(x) for x in sys.argv[2:6])
d = res["direct"]["median"]
print("\nmedian wall time (ms), ratio to direct exec")
for name in ("direct", "launcher", "sh-wrapper"):
    m = res[name]["median"]
    print(f"  {name:11} {m * 1000:7.3f} ms  {m / d:5.2f}x")
ratio = res["launcher"]["median"] / d
print(f"\npeak RSS (KiB): direct {rss_direct}, through the shim {rss_shim}, launcher alone {rss_launcher}")
print(f"launcher binary: {size / 1024:.0f} KiB, static")
ok_time = ratio <= 1.5
ok_rss = rss_launcher <= 2048 and rss_shim <= max(2048, rss_direct)
print(f"goal launcher <= 1.5x direct: {'met' if ok_time else 'MISSED'} ({ratio:.2f}x)")
print(f"goal launcher peak RSS <= 2 MiB: {'met' if ok_rss else 'MISSED'} ({rss_launcher} KiB)")
PY
