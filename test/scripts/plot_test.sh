#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/plot draws every kind of figure headless, as PNG and SVG, with the
# expected series. Usage: plot_test.sh IOMMUSIM SOURCE_DIR
set -euo pipefail
cli="$1"
src="$2"
work="$(mktemp -d /tmp/iommusim-plot-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT
unset DISPLAY
p="$src/platforms/vtd-nic-strict.json"
"$cli" run "$p" --quiet --set duration_us=300 --out "$work/strict"
"$cli" run "$p" --quiet --set duration_us=300 --set host.driver.flush=lazy --set host.driver.flush_queue_entries=16 --out "$work/lazy"
"$cli" sweep "$p" --set duration_us=200 --vary devices.0.ring_entries=16,64 --vary host.driver.flush=strict,lazy \
  --stat nic0.rx_throughput --stat os.invalidation.latency.p99 --out "$work/sweep" --jobs 2

check() { # FILE_BASE TEXT...: both files exist, are non-trivial, and the SVG names every series
  local base="$1"; shift
  [ -s "$base.png" ] && [ "$(head -c 8 "$base.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || { echo "no PNG $base.png" >&2; exit 1; }
  [ -s "$base.svg" ] || { echo "no SVG $base.svg" >&2; exit 1; }
  for t in "$@"; do grep -qF -- "$t" "$base.svg" || { echo "$base.svg lacks \"$t\"" >&2; exit 1; }; done
}
"$src/scripts/plot" cdf "$work/strict" -o "$work/fig/cdf"
check "$work/fig/cdf" "submit to fetch" "device-TLB round trip" "wait to observed" "end to end"
"$src/scripts/plot" phases "$work/strict" "$work/lazy" -o "$work/fig/phases"
check "$work/fig/phases" "strict" "lazy" "device-TLB round trip"
"$src/scripts/plot" sweep "$work/sweep" --x devices.0.ring_entries --y nic0.rx_throughput --series host.driver.flush -o "$work/fig/sweep"
check "$work/fig/sweep" "host.driver.flush=strict" "host.driver.flush=lazy" "nic0.rx_throughput [Gb/s]"
"$src/scripts/plot" caches "$work/strict" "$work/lazy" -o "$work/fig/caches"
check "$work/fig/caches" "dmar0.translation.iotlb" "nic0.fn0.atc"
# Bad input is a clear error.
if "$src/scripts/plot" sweep "$work/sweep" --x nope --y nic0.rx_throughput 2>"$work/err"; then exit 1; fi
grep -q "no column 'nope'" "$work/err"
echo "plots ok"
