#!/usr/bin/env bash
# Starts (or stops) the heterogeneous Slurm test cluster on this machine, as the Rust test
# helper tests/src/slurm.rs builds it (read its module documentation: this script writes the
# same slurm.conf and supervisor, keep the two in step): munged with its own key and socket,
# slurmctld and three `slurmd -N` on loopback ports of their own, all in one PID namespace.
#
#   ci/cluster/slurm.sh start DIR    # prints `export SLURM_CONF=DIR/slurm.conf` when all are idle
#   ci/cluster/slurm.sh stop DIR     # kills every daemon, step and job of the cluster
#
# Nodes and Features: `v3` (x86_64,x86_64-v2,x86_64-v3), `baseline` (x86_64) and `arm`
# (aarch64). The arm node's slurmd runs in a user + mount namespace with its own binfmt_misc
# instance where qemu-aarch64 is registered, so its jobs run aarch64 binaries while the host
# and the other nodes do not (Linux 6.7 or later). In that namespace DIR/bin-aarch64 is
# mounted over DIR/bin: a program put under one name in both is each node's own build.
# Needs root and the packages ci/setup.sh installs (slurmctld slurmd slurm-client munge
# qemu-user-static). Clients need only SLURM_CONF.
set -euo pipefail

usage() { echo "usage: slurm.sh start|stop DIR" >&2; exit 2; }
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage

stop() {
  local pidfile=$1/run/supervisor.pid
  [ -f "$pidfile" ] || return 0
  local pid init
  pid=$(cat "$pidfile")
  # unshare's only child is PID 1 of the namespace; SIGKILL to unshare (--kill-child) kills
  # it, and the kernel then kills every process of the namespace.
  init=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{print $1}') || true
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 500); do
    if [ -z "$init" ] || [ ! -e "/proc/$init" ] || grep -q '^State:.*[ZX]' "/proc/$init/status" 2>/dev/null; then
      break
    fi
    sleep 0.02
  done
  rm -f "$pidfile"
}

case $cmd in
  stop) stop "$dir"; exit 0 ;;
  start) ;;
  *) usage ;;
esac

[ "$(id -u)" = 0 ] || { echo "slurm.sh: run as root (slurmd starts jobs as the submitting user)" >&2; exit 1; }
for need in munged slurmctld slurmd srun sinfo unshare; do
  command -v "$need" >/dev/null || { echo "slurm.sh: $need is missing (run ci/setup.sh)" >&2; exit 1; }
done
[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || { echo "slurm.sh: qemu-user-static is missing (run ci/setup.sh)" >&2; exit 1; }

stop "$dir"
rm -rf "$dir"
mkdir -p "$dir"
D=$(cd "$dir" && pwd)
chmod 755 "$D"
for sub in run log spool bin bin-aarch64; do mkdir -m 755 "$D/$sub"; done
for sub in munge state; do mkdir -m 700 "$D/$sub"; done
for node in v3 baseline arm; do mkdir "$D/spool/$node"; done
head -c 1024 /dev/urandom >"$D/munge/key"
chmod 400 "$D/munge/key"
# Debian's qemu-user-static registration: F opens the interpreter now, P keeps argv[0].
printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF' \
  >"$D/binfmt-aarch64"

read -r ctld v3 baseline arm < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(cut -d. -f1 /proc/sys/kernel/hostname)

cat >"$D/slurm.conf" <<CONF
# The fatbin test cluster (ci/cluster/slurm.sh, as tests/src/slurm.rs).
ClusterName=fatbintest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/run/munge.socket
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=v3 NodeHostname=$host NodeAddr=127.0.0.1 Port=$v3 CPUs=8 Features=x86_64,x86_64-v2,x86_64-v3
NodeName=baseline NodeHostname=$host NodeAddr=127.0.0.1 Port=$baseline CPUs=8 Features=x86_64
NodeName=arm NodeHostname=$host NodeAddr=127.0.0.1 Port=$arm CPUs=8 Features=aarch64
PartitionName=all Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

cat >"$D/cluster.sh" <<SCRIPT
#!/bin/sh
# PID 1 of the cluster's PID namespace (ci/cluster/slurm.sh).
set -eu
D='$D'
export SLURM_CONF="\$D/slurm.conf"
log="\$D/log"
munged --foreground --socket="\$D/run/munge.socket" --key-file="\$D/munge/key" \\
  --pid-file="\$D/munge/munged.pid" --seed-file="\$D/munge/seed" --log-file="\$log/munged.log" \\
  >>"\$log/munged.log" 2>&1 &
munged=\$!
until [ -S "\$D/run/munge.socket" ]; do
  kill -0 "\$munged" 2>/dev/null || { echo "munged exited" >&2; exit 1; }
  sleep 0.01
done
slurmctld -D -c >>"\$log/slurmctld.out" 2>&1 &
for node in v3 baseline; do slurmd -D -N "\$node" >>"\$log/slurmd-\$node.out" 2>&1 & done
rm -f "\$D/run/arm.go"
mkfifo "\$D/run/arm.go"
unshare --user --mount -- /bin/sh -c '
  read -r _ <"\$1/run/arm.go" &&
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc &&
  mount --bind "\$1/bin-aarch64" "\$1/bin" &&
  cat "\$1/binfmt-aarch64" >/proc/sys/fs/binfmt_misc/register &&
  exec slurmd -D -N arm' sh "\$D" >>"\$log/slurmd-arm.out" 2>&1 &
arm=\$!
until [ "\$(readlink /proc/\$arm/ns/user)" != "\$(readlink /proc/\$\$/ns/user)" ]; do sleep 0.01; done
echo '0 0 4294967295' >/proc/\$arm/uid_map
echo '0 0 4294967295' >/proc/\$arm/gid_map
echo go >"\$D/run/arm.go"
wait
SCRIPT

setsid unshare --pid --fork --kill-child --mount-proc -- /bin/sh "$D/cluster.sh" \
  </dev/null >"$D/log/cluster.out" 2>&1 &
echo $! >"$D/run/supervisor.pid"

export SLURM_CONF=$D/slurm.conf
for _ in $(seq 600); do
  states=$(sinfo --noheader --Node --format='%N %T' 2>/dev/null | sort | tr '\n' ' ') || true
  if [ "$states" = "arm idle baseline idle v3 idle " ]; then
    echo "export SLURM_CONF=$D/slurm.conf"
    exit 0
  fi
  kill -0 "$(cat "$D/run/supervisor.pid")" 2>/dev/null || break
  sleep 0.05
done
echo "slurm.sh: the cluster did not come up; sinfo says: ${states:-nothing}" >&2
tail -n 15 "$D"/log/* >&2 || true
stop "$D"
exit 1
