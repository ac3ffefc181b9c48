#!/usr/bin/env bash
# Benchmark of the launcher's fast path (issue 4), run the same locally and in CI.
#
# Times, in one hyperfine run: direct exec of a static hello slot; the same slot through its
# shim and the launcher; the layout the README builds (x86_64 + x86_64-v3 + aarch64); both
# through a node-local view (`fatbin view sync`: straight to the slot, and via the shim); the
# launcher choosing among five slots (x86_64, -v2, -v3, -v4,
# aarch64: it must read the CPU's features); a call the fast launcher hands over to
# fatbin-full (a manifest not in the canonical shape); the portable `#!/bin/sh` shim
# (launcher/shim/fatbin-portable.sh); and a `#!/bin/sh` wrapper that execs
# `dir/$(uname -m)` (the usual hand-made alternative). Prints the median ratios against
# direct exec and the launcher's peak RSS. Goals: one slot <= 1.35x direct, the three-slot
# layout <= 1.5x, a view entry straight to its slot <= 1.05x; peak RSS <= 2 MiB.
#
# Needs: hyperfine, GNU time (`apt-get install hyperfine time`), python3, the
# x86_64-unknown-linux-musl and aarch64-unknown-linux-musl targets (`rustup target add ...`).
# Environment: ROUNDS (default 5), RUNS per round (default 500), WARMUP (default 100);
# BASELINE_LAUNCHER: another build of the fast launcher (e.g. the previous main's
# target/cross/x86_64-unknown-linux-musl/release/fatbin, with its fatbin-full beside it) to
# time in the same rounds, through a copy of the same layout (rows `baseline-*`).
# A round times every command once; ratios are taken within each round (so load from other
# processes that comes and goes hits both sides alike), and the median round is reported.
# Under heavy load a round's blocks of RUNS runs still see different load, so the fast paths
# are timed once more interleaved (INTERLEAVED turns, default 2000: each command once a turn).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-5}
runs=${RUNS:-500}
warmup=${WARMUP:-100}
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
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld} \
    cargo build --quiet --release --manifest-path "$here/tests/fixtures/probe/Cargo.toml" \
    --target aarch64-unknown-linux-musl --target-dir "$here/target/fixtures/default"
for cpu in x86-64-v2 x86-64-v3 x86-64-v4; do
    RUSTFLAGS="-C target-cpu=$cpu" cargo build --quiet --release \
        --manifest-path "$here/tests/fixtures/probe/Cargo.toml" \
        --target "$target" --target-dir "$here/target/fixtures/$cpu"
done
launcher=$here/target/cross/$target/release/fatbin
full_launcher=$here/target/cross/$target/release/fatbin-full
hello=$here/target/fixtures/default/$target/release/probe

work=$(mktemp -d /tmp/fatbin-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
root=$work/root
mkdir -p "$root/bin/hello" "$root/shims" "$work/node" "$work/wrap"
chmod 755 "$root" "$root/bin" "$root/bin/hello" "$root/shims"
# The node-local launcher (the fast one and the full one beside it), and the shims exactly
# as an install writes them.
cp "$launcher" "$work/node/fatbin"
cp "$full_launcher" "$work/node/fatbin-full"
ln -s "$work/node/fatbin" "$root/shims/fatbin"
ln -s fatbin "$root/shims/hello"
# Slot facts as `cargo fatbin install` records them (docs/layout.md).
slot_toml() { # SLOT FILE FEATURES [ARCH TARGET]
    printf '[slots.%s]\ntarget = "%s"\narch = "%s"\nbits = 64\nendian = "little"\n' "$1" \
        "${5:-$target}" "${4:-x86_64}"
    printf 'libc = "static"\nfeatures = [%s]\nsize = %s\nsha256 = "%s"\n\n' "$3" \
        "$(stat -c %s "$2")" "$(sha256sum "$2" | cut -d' ' -f1)"
}
install_slot() { # PROG SLOT FILE
    cp "$3" "$root/bin/$1/$2"
}
cp "$hello" "$root/bin/hello/x86_64"
{
    printf 'format = 1\nprogram = "hello"\n\n'
    slot_toml x86_64 "$hello" ""
} >"$root/bin/hello/fatbin.toml"

# `levels`: the same program with a slot per x86-64 level (v2..v4 need CPU features).
mkdir -p "$root/bin/levels"
chmod 755 "$root/bin/levels"
ln -s fatbin "$root/shims/levels"
v2='"cmpxchg16b", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3"'
v3="$v2"', "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"'
v4="$v3"', "avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"'
{
    printf 'format = 1\nprogram = "levels"\n\n'
    install_slot levels x86_64 "$hello"
    slot_toml x86_64 "$hello" ""
    for n in 2 3 4; do
        file=$here/target/fixtures/x86-64-v$n/$target/release/probe
        install_slot levels "x86_64-v$n" "$file"
        eval "features=\$v$n"
        slot_toml "x86_64-v$n" "$file" "$features"
    done
} >"$root/bin/levels/fatbin.toml"

# `three`: the layout the README builds, x86_64 + x86_64-v3 + aarch64 (all static).
mkdir -p "$root/bin/three"
chmod 755 "$root/bin/three"
ln -s fatbin "$root/shims/three"
arm=$here/target/fixtures/default/aarch64-unknown-linux-musl/release/probe
{
    printf 'format = 1\nprogram = "three"\n\n'
    install_slot three aarch64 "$arm"
    slot_toml aarch64 "$arm" "" aarch64 aarch64-unknown-linux-musl
    install_slot three x86_64 "$hello"
    slot_toml x86_64 "$hello" ""
    file=$here/target/fixtures/x86-64-v3/$target/release/probe
    install_slot three x86_64-v3 "$file"
    slot_toml x86_64-v3 "$file" "$v3"
} >"$root/bin/three/fatbin.toml"

# `handed`: the hello slot again, in a manifest the fast launcher does not read (a comment
# after a value is valid TOML but not the canonical shape), so every run is handed over to
# fatbin-full: what everything but a plain shim call costs.
mkdir -p "$root/bin/handed"
chmod 755 "$root/bin/handed"
ln -s fatbin "$root/shims/handed"
cp "$hello" "$root/bin/handed/x86_64"
sed 's/^program = "hello"$/program = "handed"/; s/^size = \(.*\)$/size = \1 # bytes/' \
    "$root/bin/hello/fatbin.toml" >"$root/bin/handed/fatbin.toml"

# The portable shim: a second ROOT whose shims/fatbin is the script and whose launcher is
# the layout's own ROOT/bin/fatbin-full/x86_64.
proot=$work/portable
mkdir -p "$proot/bin/hello" "$proot/bin/fatbin-full" "$proot/shims"
chmod 755 "$proot" "$proot/bin" "$proot/bin/hello" "$proot/bin/fatbin-full" "$proot/shims"
cp "$hello" "$proot/bin/hello/x86_64"
cp "$root/bin/hello/fatbin.toml" "$proot/bin/hello/"
cp "$full_launcher" "$proot/bin/fatbin-full/x86_64"
{
    printf 'format = 1\nprogram = "fatbin-full"\n\n'
    slot_toml x86_64 "$full_launcher" ""
} >"$proot/bin/fatbin-full/fatbin.toml"
install -m 755 "$here/launcher/shim/fatbin-portable.sh" "$proot/shims/fatbin"
ln -s fatbin "$proot/shims/hello"

cat >"$work/wrap/hello" <<'SH'
#!/bin/sh
exec "$(dirname "$0")/../root/bin/hello/$(uname -m)" "$@"
SH
chmod 755 "$work/wrap/hello"

# The node-local view (`fatbin view sync`): view/hello is a symlink straight to the static
# baseline slot; view/three goes through the shim (its best slot needs CPU features).
XDG_CACHE_HOME=$work/cache "$work/node/fatbin" view sync --root "$root" "$work/view" >/dev/null

# Sanity: all of them run the same program.
for cmd in "$root/bin/hello/x86_64" "$root/shims/hello" "$root/shims/levels" "$root/shims/three" \
    "$root/shims/handed" "$work/view/hello" "$work/view/three" \
    "$proot/shims/hello" "$work/wrap/hello"; do
    "$cmd" | grep -q '^probe arch=x86_64' || { echo "bench-launcher: $cmd does not run the hello slot" >&2; exit 1; }
done

# The floor: the cheapest possible extra exec, a 9 KB stub without a C library that only
# execs the slot. Whatever the launcher costs beyond this is its own work.
cat >"$work/floor.c" <<C
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
__attribute__((force_align_arg_pointer)) void floor_main(long *sp) {
    char **argv = (char **)(sp + 1), **envp = argv + sp[0] + 1;
    sys3(59, (long)"$root/bin/hello/x86_64", (long)argv, (long)envp);
    sys3(60, 127, 0, 0);
}
__asm__(".globl _start\n_start:\n mov %rsp,%rdi\n call floor_main\n");
C
names=(direct launcher launcher-3-slots launcher-5-slots view view-3-slots handed-over
    portable-shim sh-wrapper)
cmds=("$root/bin/hello/x86_64" "$root/shims/hello" "$root/shims/three" "$root/shims/levels"
    "$work/view/hello" "$work/view/three" "$root/shims/handed"
    "$proot/shims/hello" "$work/wrap/hello")
if [ -n "${BASELINE_LAUNCHER:-}" ]; then
    # The same layout and slots, its shims pointing at the baseline launcher pair.
    mkdir -p "$work/base-node"
    chmod 755 "$work/base-node"
    cp "$BASELINE_LAUNCHER" "$work/base-node/fatbin"
    cp "$(dirname "$BASELINE_LAUNCHER")/fatbin-full" "$work/base-node/fatbin-full"
    cp -a "$root" "$work/base-root"
    ln -sfn "$work/base-node/fatbin" "$work/base-root/shims/fatbin"
    "$work/base-root/shims/hello" | grep -q '^probe arch=x86_64' ||
        { echo "bench-launcher: the baseline launcher does not run the hello slot" >&2; exit 1; }
    names+=(baseline-launcher baseline-3-slots baseline-5-slots)
    cmds+=("$work/base-root/shims/hello" "$work/base-root/shims/three" "$work/base-root/shims/levels")
fi
if [ "$(uname -m)" = x86_64 ] && gcc -O2 -static -nostdlib -fno-stack-protector \
    -o "$work/exec-floor" "$work/floor.c" 2>/dev/null; then
    names+=(exec-floor)
    cmds+=("$work/exec-floor")
fi
for round in $(seq "$rounds"); do
    args=()
    for i in "${!names[@]}"; do
        args+=(-n "${names[$i]}" "${cmds[$i]}")
    done
    echo "round $round of $rounds..." >&2
    hyperfine -N --style basic --warmup "$warmup" --runs "$runs" \
        --export-json "$work/round-$round.json" "${args[@]}" >/dev/null
done

# Interleaved: the fast paths again, each command once per turn (in a rotating order), so
# load that comes and goes on a shared machine hits every command alike; the ratio to direct
# exec is taken within each turn and the median over INTERLEAVED turns (default 2000; 0 skips
# it) reported. The spawn costs the same for every command.
python3 - "${INTERLEAVED:-2000}" "$work/interleaved.json" "${names[@]}" -- "${cmds[@]}" <<'PY'
import json, os, sys, time
turns, out = int(sys.argv[1]), sys.argv[2]
rest = sys.argv[3:]
names, cmds = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
fast = [(n, c) for n, c in zip(names, cmds) if n not in ("portable-shim", "sh-wrapper")]
null = os.open("/dev/null", os.O_WRONLY)
def run(path):
    start = time.perf_counter_ns()
    pid = os.posix_spawn(path, [path], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(f"bench-launcher: {path} failed")
    return time.perf_counter_ns() - start
times = {n: [] for n, _ in fast}
for turn in range(min(turns, 50) + turns):
    k = turn % len(fast)
    for n, c in fast[k:] + fast[:k]:
        t = run(c)
        if turn >= min(turns, 50):  # the first turns warm up
            times[n].append(t)
json.dump(times, open(out, "w"))
PY

maxrss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rss_direct=$(maxrss "$root/bin/hello/x86_64")
rss_shim=$(maxrss "$root/shims/hello")
# The larger of the two launchers, without a program: fatbin-full deciding for the 5-slot
# program (`fatbin which` is handed over to it). The fast launcher's own peak is below the
# program's, so "through the shim" above is the program's.
rss_launcher=$(maxrss "$root/shims/fatbin" which levels)

python3 - "$work" "$rounds" "${names[*]}" "$rss_direct" "$rss_shim" "$rss_launcher" "$(stat -c %s "$launcher")" <<'PY'
import json, statistics, sys
work, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rss_direct, rss_shim, rss_launcher, size = (int(x) for x in sys.argv[4:8])
medians = {n: [] for n in names}
cpu = {n: [] for n in names}
for r in range(1, rounds + 1):
    res = {x["command"]: x for x in json.load(open(f"{work}/round-{r}.json"))["results"]}
    for n in names:
        medians[n].append(res[n]["median"])
        cpu[n].append(res[n]["user"] + res[n]["system"])
ratio = {n: statistics.median(m / d for m, d in zip(medians[n], medians["direct"])) for n in names}
cpu_ratio = {n: statistics.median(m / d for m, d in zip(cpu[n], cpu["direct"])) for n in names}
print(f"\nmedian wall time over {rounds} rounds; ratio to direct exec (median of per-round ratios)")
for n in names:
    print(f"  {n:17} {statistics.median(medians[n]) * 1000:7.3f} ms  {ratio[n]:5.2f}x"
          f"   (CPU time {cpu_ratio[n]:5.2f}x)")
print("  per-round launcher ratios: "
      + " ".join(f"{m / d:.2f}" for m, d in zip(medians["launcher"], medians["direct"])))
inter = json.load(open(f"{work}/interleaved.json"))
if inter.get("direct"):
    turns = len(inter["direct"])
    print(f"\ninterleaved, {turns} turns (ratio to direct exec within each turn, median):")
    for n, t in inter.items():
        pairs = statistics.median(x / d for x, d in zip(t, inter["direct"]))
        print(f"  {n:17} {statistics.median(t) / 1e6:7.3f} ms  {pairs:5.2f}x")
if "baseline-launcher" in names:
    print(f"  baseline launcher: one slot {ratio['baseline-launcher']:.2f}x, three slots"
          f" {ratio['baseline-3-slots']:.2f}x, five slots {ratio['baseline-5-slots']:.2f}x")
print(f"\npeak RSS (KiB): direct {rss_direct}, through the shim {rss_shim}, fatbin-full alone {rss_launcher}")
print(f"launcher binary (the fast path): {size / 1024:.0f} KiB, static")
ok_time = ratio["launcher"] <= 1.35 and ratio["launcher-3-slots"] <= 1.5
ok_view = ratio["view"] <= 1.05
ok_rss = max(rss_launcher, rss_shim) <= 2048
print(f"goal one slot <= 1.35x and x86_64 + x86_64-v3 + aarch64 <= 1.5x direct:"
      f" {'met' if ok_time else 'MISSED'} (one slot {ratio['launcher']:.2f}x;"
      f" three slots {ratio['launcher-3-slots']:.2f}x; choosing among 5 slots"
      f" {ratio['launcher-5-slots']:.2f}x)")
print(f"goal view entry straight to the slot <= 1.05x direct: {'met' if ok_view else 'MISSED'}"
      f" ({ratio['view']:.2f}x; a view entry through the shim {ratio['view-3-slots']:.2f}x)")
print(f"goal launcher peak RSS <= 2 MiB: {'met' if ok_rss else 'MISSED'}"
      f" (fatbin-full {rss_launcher} KiB; a shim call {rss_shim} KiB)")
PY
