#!/usr/bin/env bash
# Starts one test node of the loopback cluster the migration benchmark (and anyone trying
# migration by hand) uses: a real sshd on 127.0.0.1, as tests/src/cluster.rs builds them.
#
#   ci/cluster/node.sh DIR NAME native|aarch64
#
# DIR collects the cluster: the client key (DIR/id), host keys, sshd configs and logs,
# DIR/ssh_config (point FATBIN_SSH_CONFIG at it) and DIR/known_hosts. Host-key checking stays on:
# every host key is written to known_hosts under the alias `fatbin-NAME`.
# An `aarch64` node runs sshd inside `unshare --user --map-root-user --map-auto --mount` with its
# own binfmt_misc mount where qemu-aarch64-static is registered, so aarch64 binaries run there
# and not on the host. Needs root, openssh-server, uidmap (`root:100000:65536` in /etc/subuid and
# /etc/subgid; ci/setup.sh adds it) and qemu-user-static. Stop the cluster with ci/cluster/stop.sh.
# Environment: NO_BASHRC=1 keeps the node's bash from reading ~/.bashrc for ssh commands.
set -euo pipefail

dir=${1:?usage: node.sh DIR NAME native|aarch64}
name=${2:?usage: node.sh DIR NAME native|aarch64}
kind=${3:?usage: node.sh DIR NAME native|aarch64}
mkdir -p "$dir" /run/sshd
dir=$(cd "$dir" && pwd)

[ -f "$dir/id" ] || ssh-keygen -q -t ed25519 -N '' -C fatbin-bench -f "$dir/id"
cp "$dir/id.pub" "$dir/authorized_keys"
touch "$dir/known_hosts" "$dir/ssh_config"
ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/host-$name" <<<y >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat >"$dir/sshd-$name.conf" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host-$name
AuthorizedKeysFile $dir/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
PrintLastLog no
LogLevel ERROR
MaxSessions 10
CONF
# NO_BASHRC=1: bash reads ~/.bashrc for every command sshd runs (Debian builds it with
# SSH_SOURCE_BASHRC) unless SHLVL says it is nested; a heavy .bashrc (pyenv init...) then
# dominates every remote command. The benchmark uses this to measure the transport itself.
if [ "${NO_BASHRC:-0}" = 1 ]; then echo "SetEnv SHLVL=3" >>"$dir/sshd-$name.conf"; fi

sshd="exec /usr/sbin/sshd -D -e -f $dir/sshd-$name.conf"
case $kind in
  native) setsid sh -c "$sshd" </dev/null >"$dir/sshd-$name.log" 2>&1 & ;;
  aarch64)
    binfmt=':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F'
    setsid unshare --user --map-root-user --map-auto --mount -- /bin/sh -c \
      "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf '%s' '$binfmt' > /proc/sys/fs/binfmt_misc/register && $sshd" \
      </dev/null >"$dir/sshd-$name.log" 2>&1 & ;;
  *) echo "node.sh: kind must be native or aarch64, not $kind" >&2; exit 2 ;;
esac
echo $! >"$dir/$name.pid"

echo "fatbin-$name $(cut -d' ' -f1,2 "$dir/host-$name.pub")" >>"$dir/known_hosts"
cat >>"$dir/ssh_config" <<CONF
Host $name
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $dir/id
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  HostKeyAlias fatbin-$name
  StrictHostKeyChecking yes
  LogLevel ERROR

CONF

for _ in $(seq 200); do
  if ssh -F "$dir/ssh_config" -o BatchMode=yes -o ControlMaster=no -o ControlPath=none "$name" true 2>/dev/null; then
    echo "node $name ($kind) on 127.0.0.1:$port" >&2
    exit 0
  fi
  sleep 0.05
done
echo "node.sh: sshd for $name did not come up:" >&2
cat "$dir/sshd-$name.log" >&2
exit 1
