#!/usr/bin/env bash
# Benchmark of a shared ROOT through a network filesystem (issue 15), run the same locally
# and in CI: an sshd on loopback serves a directory over sftp, sshfs mounts it with its
# default options, and a static hello slot is run through the mount.
#
# Times, in one hyperfine run per round:
#   local-direct      the slot itself, on the server's own path
#   local-link-shim   today's symlink shim (shims/hello -> fatbin -> node launcher), local
#   local-script-shim the `#!` shim (`cargo fatbin install --script-shims`), local
#   mount-direct      the same slot through the mount
#   mount-script-shim the `#!` shim through the mount (symlink shims do not pass through
#                     sshfs: readlink answers EPERM, so there is no mount-link-shim)
# and, separately, the first run through the mount after each reinstall of the slot on the
# server (a new inode under the same name: the client's caches are stale), `--prepare`d.
# Prints medians and ratios; goal: mount-script-shim <= 1.5x mount-direct.
#
# Needs: hyperfine, sshfs, openssh-server, python3, root (sshd), the
# x86_64-unknown-linux-musl target. Environment: ROUNDS (default 3), RUNS (default 200),
# WARMUP (default 20), COLD_RUNS (default 50).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
runs=${RUNS:-200}
warmup=${WARMUP:-20}
cold_runs=${COLD_RUNS:-50}
target=x86_64-unknown-linux-musl
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld}

for tool in hyperfine python3 sshfs fusermount3 /usr/sbin/sshd ssh-keygen; do
    command -v "$tool" >/dev/null || { echo "bench-sharedfs: $tool is missing (bash ci/setup.sh)" >&2; exit 1; }
done

echo "building the static launcher and the hello slot ($target, release)..." >&2
cargo build --quiet --release -p fatbin --target "$target" --target-dir "$here/target/cross" \
    --manifest-path "$here/Cargo.toml"
cargo build --quiet --release --manifest-path "$here/tests/fixtures/probe/Cargo.toml" \
    --target "$target" --target-dir "$here/target/fixtures/default"
launcher=$here/target/cross/$target/release/fatbin
hello=$here/target/fixtures/default/$target/release/probe

work=$(mktemp -d /tmp/fatbin-bench-sharedfs.XXXXXX)
sshd_pid=
cleanup() {
    fusermount3 -u -z "$work/mnt" 2>/dev/null || true
    [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/node" "$work/export/root/bin/hello" "$work/export/root/shims" "$work/mnt" /run/sshd
chmod 755 "$work/node" "$work/export" "$work/export/root" "$work/export/root/bin" \
    "$work/export/root/bin/hello" "$work/export/root/shims"
root=$work/export/root
cp "$launcher" "$work/node/fatbin"
cp "${launcher}-full" "$work/node/fatbin-full"
cp "$hello" "$root/bin/hello/x86_64"
{
    printf 'format = 1\nprogram = "hello"\n\n[slots.x86_64]\ntarget = "%s"\narch = "x86_64"\n' "$target"
    printf 'bits = 64\nendian = "little"\nlibc = "static"\nfeatures = []\nsize = %s\nsha256 = "%s"\n' \
        "$(stat -c %s "$hello")" "$(sha256sum "$hello" | cut -d' ' -f1)"
} >"$root/bin/hello/fatbin.toml"
# Both shim forms side by side: symlinks as a default install writes them, and `#!` files
# as `--script-shims` writes them (same bytes as layout's script_shim_text).
ln -s "$work/node/fatbin" "$root/shims/fatbin"
ln -s fatbin "$root/shims/hello"
# A second ROOT with the same program and `#!` shims.
sroot=$work/export/sroot
mkdir -p "$sroot/bin" "$sroot/shims"
chmod 755 "$sroot" "$sroot/bin" "$sroot/shims"
cp -a "$root/bin/hello" "$sroot/bin/hello"
printf '#!%s\n' "$work/node/fatbin" >"$sroot/shims/hello"
printf '#!%s\n' "$work/node/fatbin" >"$sroot/shims/fatbin"
chmod 755 "$sroot/shims/hello" "$sroot/shims/fatbin"

# The file server: an sshd on a free loopback port with keys made for this run.
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
cp "$work/id.pub" "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/sshd.conf" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $work/hostkey
AuthorizedKeysFile $work/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
/usr/sbin/sshd -D -e -f "$work/sshd.conf" 2>"$work/sshd.log" &
sshd_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
# sshfs as a user mounts it: no caching options (allow_other so any user could run from it).
sshfs -o "allow_other,BatchMode=yes,IdentityFile=$work/id,Port=$port,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null" \
    "root@127.0.0.1:$work/export" "$work/mnt"
mnt=$work/mnt

names=(local-direct local-link-shim local-script-shim mount-direct mount-script-shim)
cmds=("$root/bin/hello/x86_64" "$root/shims/hello" "$sroot/shims/hello"
    "$mnt/root/bin/hello/x86_64" "$mnt/sroot/shims/hello")
for cmd in "${cmds[@]}"; do
    "$cmd" | grep -q '^probe arch=x86_64' || { echo "bench-sharedfs: $cmd does not run the hello slot" >&2; exit 1; }
done
if "$mnt/root/shims/hello" >/dev/null 2>&1; then
    echo "note: symlink shims ran through this sshfs mount" >&2
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
# The first run after an install: the slot is replaced on the server (new inode, same name,
# renamed into place as an install does) before each timed run through the mount.
printf 'cp %s %s/bin/hello/.x86_64.new && mv %s/bin/hello/.x86_64.new %s/bin/hello/x86_64\n' \
    "$hello" "$sroot" "$sroot" "$sroot" >"$work/reinstall.sh"
echo "first runs after a reinstall..." >&2
hyperfine -N --style basic --runs "$cold_runs" --prepare "sh $work/reinstall.sh" \
    --export-json "$work/cold.json" -n mount-script-shim-after-install "$mnt/sroot/shims/hello" >/dev/null

python3 - "$work" "$rounds" "${names[*]}" <<'PY'
import json, statistics, sys
work, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
med = {n: [] for n in names}
for r in range(1, rounds + 1):
    res = {x["command"]: x for x in json.load(open(f"{work}/round-{r}.json"))["results"]}
    for n in names:
        med[n].append(res[n]["median"])
def ratio(a, b):
    return statistics.median(x / y for x, y in zip(med[a], med[b]))
print(f"\nmedian wall time over {rounds} rounds (ratios: median of per-round ratios)")
for n in names:
    print(f"  {n:18} {statistics.median(med[n]) * 1000:7.3f} ms")
cold = json.load(open(f"{work}/cold.json"))["results"][0]["median"]
print(f"  {'first run after an install (mount-script-shim)':18} {cold * 1000:7.3f} ms")
print(f"\nlocal: link shim {ratio('local-link-shim', 'local-direct'):.2f}x direct,"
      f" script shim {ratio('local-script-shim', 'local-direct'):.2f}x direct"
      f" (script/link {ratio('local-script-shim', 'local-link-shim'):.2f}x)")
r = ratio('mount-script-shim', 'mount-direct')
print(f"mount: script shim {r:.2f}x direct exec through the same mount;"
      f" mount-direct is {ratio('mount-direct', 'local-direct'):.2f}x local-direct")
print(f"goal script shim through the mount <= 1.5x direct: {'met' if r <= 1.5 else 'MISSED'} ({r:.2f}x)")
PY
