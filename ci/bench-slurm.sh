#!/usr/bin/env bash
# Benchmark of the Slurm route (issue 10), run the same locally and in CI.
#
# Starts the real Slurm test cluster (tests/src/slurm.rs: munged, slurmctld, three slurmd on
# this machine) and times, in one hyperfine run, a request for an aarch64-only program
# migrated through the route (`fatbin run --root ROOT probe`: the launcher decides, runs srun,
# the aarch64 node's launcher picks the slot) against the same binary started by hand with
# `srun --quiet -C aarch64 ROOT/bin/probe/aarch64`. Goal: <= 1.1x. To show where the
# difference goes it also times the node's side alone (`srun -C F fatbin-full run --root ROOT
# probe`: no decision on the caller) on the aarch64 node, where the launcher runs under qemu as
# the program does, and on a native x86_64 node against that node's plain srun.
#
# Needs root, hyperfine, the Slurm and MUNGE packages and qemu-user-static (ci/setup.sh), and
# the x86_64 and aarch64 musl targets. Environment: RUNS (default 50).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
command -v hyperfine >/dev/null || { echo "bench-slurm: hyperfine is missing (run ci/setup.sh)" >&2; exit 1; }
cd "$here"
RUNS=${RUNS:-50} cargo test --quiet -p fatbin-tests --test integration slurm_route_benchmark \
  -- --ignored --exact slurm::slurm_route_benchmark --nocapture
