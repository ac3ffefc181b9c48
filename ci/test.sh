#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs every test of the
# workspace (unit tests and the integration tests, which really cross-build, run qemu-user and
# start sshd nodes on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
cargo test --workspace "$@"
