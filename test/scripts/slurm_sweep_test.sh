#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A sweep on a real single-node SLURM cluster (scripts/slurm-local) gives
# byte for byte the sweep.csv of the same sweep run locally.
# Usage: slurm_sweep_test.sh IOMMUSIM SOURCE_DIR
set -euo pipefail
cli="$1"
src="$2"
work="$(mktemp -d /tmp/iommusim-slurm-test.XXXXXX)"
chmod 755 "$work"
state="$work/slurm"
export IOMMUSIM_SLURM_DIR="$state"
ok=0
cleanup() { # the cluster stops; its logs stay when the test failed
  "$src/scripts/slurm-local" stop || true
  if [ "$ok" = 1 ]; then rm -rf "$work" || true; fi
  return 0
}
trap cleanup EXIT

"$src/scripts/slurm-local" start
export SLURM_CONF="$state/slurm.conf"

platform="$src/platforms/vtd-nic-strict.json"
args=(--set duration_us=200 --vary host.driver.flush=strict,lazy --vary devices.0.ring_entries=16,64
      --stat nic0.rx_packets --stat os.invalidation.latency.p99 --stat dmar0.wait_latency.mean)

"$cli" sweep "$platform" "${args[@]}" --out "$work/local" --jobs 2
"$cli" sweep "$platform" "${args[@]}" --out "$work/cluster" --emit slurm
sbatch --wait "$work/cluster/sweep.sbatch"
"$cli" sweep collect "$work/cluster"

if ! cmp "$work/local/sweep.csv" "$work/cluster/sweep.csv"; then
  diff "$work/local/sweep.csv" "$work/cluster/sweep.csv" >&2 || true
  exit 1
fi
rows=$(($(wc -l < "$work/cluster/sweep.csv") - 1))
[ "$rows" -eq 4 ] || { echo "expected 4 points, got $rows" >&2; exit 1; }
# Every point ran as an array task (its log is there) and exited 0.
[ "$(ls "$work/cluster"/slurm-*_*.out | wc -l)" -eq 4 ]
! cut -d, -f6 "$work/cluster/sweep.csv" | tail -n +2 | grep -vx 0
echo "slurm sweep: $rows points, identical to the local sweep"
ok=1
