# SPDX-License-Identifier: Apache-2.0
"""Figures from iommusim results; every figure is written as OUT.png and OUT.svg.

  plot cdf RESULTS [-o OUT]            invalidation latency CDF, one line per phase (invalidations.csv)
  plot phases RESULTS... [-o OUT]      mean invalidation latency by phase, a stacked bar per results folder
  plot sweep SWEEP --x KEY --y STAT [--series KEY] [-o OUT]
                                       a stat over a varied key, one line per value of another key (sweep.csv)
  plot caches RESULTS... [-o OUT]      hit rate of every cache (IOTLB, walk caches, context/PASID caches, ATCs)

RESULTS is a results folder of `iommusim run`, SWEEP the folder of `iommusim sweep`.
"""
import argparse
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Text stays text in SVG (searchable, and tests can find the series names).
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["svg.hashsalt"] = "iommusim"  # stable ids: same data, same SVG
matplotlib.rcParams["figure.dpi"] = 100

# Phases of an invalidation: (label, from column, to column) of invalidations.csv.
PHASES = [
    ("submit to fetch", "submitted_ns", "fetched_ns"),
    ("fetch to caches done", "fetched_ns", "caches_done_ns"),
    ("caches to device-TLB sent", "caches_done_ns", "devtlb_sent_ns"),
    ("device-TLB round trip", "devtlb_sent_ns", "devtlb_done_ns"),
    ("to wait done", None, "wait_done_ns"),  # from the last of caches/device-TLB done
    ("wait to observed", "wait_done_ns", "observed_ns"),
]
# The same phases as stats.json histograms (os.invalidation.<name>).
PHASE_STATS = [
    ("submit to fetch", "phase_submit_to_fetch"),
    ("fetch to caches done", "phase_fetch_to_caches_done"),
    ("caches to device-TLB sent", "phase_caches_to_devtlb_sent"),
    ("device-TLB round trip", "phase_devtlb_round_trip"),
    ("to wait done", "phase_to_wait_done"),
    ("wait to observed", "phase_wait_to_observed"),
]


def fail(msg):
    print("plot: " + msg, file=sys.stderr)
    sys.exit(2)


def save(fig, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{out}.{ext}", metadata={"Date": None} if ext == "svg" else None)
    plt.close(fig)
    print(f"{out}.png {out}.svg")


def load_stats(folder):
    path = os.path.join(folder, "stats.json") if os.path.isdir(folder) else folder
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")


def label_of(folder):
    return os.path.basename(os.path.normpath(folder))


def read_csv(path, reader=csv.reader):
    try:
        with open(path) as f:
            return list(reader(f))
    except OSError as e:
        fail(f"{path}: {e}")


def cmd_cdf(a):
    path = os.path.join(a.results, "invalidations.csv")
    rows = read_csv(path, csv.DictReader)
    if not rows:
        fail(f"{path}: no invalidations")
    num = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else None  # noqa: E731
    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = []
    for label, lo, hi in PHASES + [("end to end", "submitted_ns", "observed_ns")]:
        vals = []
        for r in rows:
            start = num(r, lo) if lo else (num(r, "devtlb_done_ns") or num(r, "caches_done_ns"))
            end = num(r, hi)
            if start is not None and end is not None:
                vals.append(max(end - start, 0.0))
        if not vals:
            continue
        vals.sort()
        ys = [(i + 1) / len(vals) for i in range(len(vals))]
        ax.step(vals, ys, where="post", label=f"{label} (n={len(vals)})", lw=1.6 if label == "end to end" else 1.1)
        series.append(label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ns)")
    ax.set_ylabel("fraction of invalidations")
    ax.set_title(f"Invalidation latency by phase: {label_of(a.results)}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save(fig, a.out or os.path.join(a.results, "inval_cdf"))


def cmd_phases(a):
    labels, data = [], {p: [] for p, _ in PHASE_STATS}
    for folder in a.results:
        s = load_stats(folder)
        inv = s.get("os", {}).get("invalidation")
        if not inv:
            fail(f"{folder}: no os.invalidation stats (a platform without a host driver?)")
        labels.append(label_of(folder))
        for p, key in PHASE_STATS:
            h = inv.get(key, {})
            # Mean over every invalidation (a phase absent from some counts as 0 for them).
            total = h.get("mean", 0) * h.get("count", 0)
            data[p].append(total / inv["count"]["value"] if inv["count"]["value"] else 0)
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(labels) + 3), 4.2))
    bottom = [0.0] * len(labels)
    for p, _ in PHASE_STATS:
        ax.bar(labels, data[p], bottom=bottom, label=p)
        bottom = [b + v for b, v in zip(bottom, data[p])]
    ax.set_ylabel("mean latency per invalidation (ns)")
    ax.set_title("Invalidation latency breakdown")
    ax.legend(fontsize=7)
    save(fig, a.out or os.path.join(a.results[0], "inval_phases"))


def cmd_sweep(a):
    path = os.path.join(a.sweep, "sweep.csv")
    rows = read_csv(path)
    if not rows:
        fail(f"{path}: empty")
    head, body = rows[0], rows[1:]

    def col(name, what):
        for i, h in enumerate(head):
            if h == name or h.split(" [")[0] == name:
                return i
        fail(f"{path}: no column {name!r} for {what}; columns: {', '.join(head)}")

    xi, yi = col(a.x, "--x"), col(a.y, "--y")
    si = col(a.series, "--series") if a.series else None
    groups = {}
    for r in body:
        if r[yi] == "":
            continue
        groups.setdefault(r[si] if si is not None else a.y, []).append((r[xi], float(r[yi])))
    if not groups:
        fail(f"{path}: no values of {a.y}")
    xs_all = [x for g in groups.values() for x, _ in g]
    numeric = all(_isnum(x) for x in xs_all)
    order = sorted(set(xs_all), key=float) if numeric else list(dict.fromkeys(xs_all))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, pts in groups.items():
        pts.sort(key=lambda p: float(p[0]) if numeric else order.index(p[0]))
        xs = [float(x) if numeric else order.index(x) for x, _ in pts]
        ax.plot(xs, [y for _, y in pts], marker="o", label=f"{head[si]}={name}" if si is not None else name)
    if not numeric:
        ax.set_xticks(range(len(order)), order)
    ax.set_xlabel(head[xi])
    ax.set_ylabel(head[yi])
    ax.set_title(f"{head[yi].split(' [')[0]} over {head[xi]}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, a.out or os.path.join(a.sweep, "sweep_" + a.y.replace(".", "_")))


def _isnum(s):
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def caches(stats, prefix=""):
    """(name, hits, misses) of every group holding hits and misses counters."""
    out = []
    if isinstance(stats, dict):
        if isinstance(stats.get("hits"), dict) and isinstance(stats.get("misses"), dict):
            out.append((prefix, stats["hits"]["value"], stats["misses"]["value"]))
        for k, v in stats.items():
            if k != "host" and isinstance(v, dict) and "unit" not in v:
                out += caches(v, f"{prefix}.{k}" if prefix else k)
    return out


def cmd_caches(a):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = None
    width = 0.8 / len(a.results)
    for n, folder in enumerate(a.results):
        found = [(c, h, m) for c, h, m in caches(load_stats(folder)) if h + m > 0]
        if names is None:
            names = [c for c, _, _ in found]
        rate = {c: 100.0 * h / (h + m) for c, h, m in found}
        ax.bar([i + n * width for i in range(len(names))], [rate.get(c, 0) for c in names], width,
               label=label_of(folder))
    if not names:
        fail("no cache saw a lookup")
    ax.set_xticks([i + width * (len(a.results) - 1) / 2 for i in range(len(names))], names, rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel("hit rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Cache hit rates")
    ax.legend(fontsize=8)
    save(fig, a.out or os.path.join(a.results[0], "cache_hits"))


def main():
    p = argparse.ArgumentParser(prog="scripts/plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    c = sub.add_parser("cdf", help="invalidation latency CDF per phase")
    c.add_argument("results")
    c.add_argument("-o", "--out", help="output path without extension")
    c.set_defaults(f=cmd_cdf)
    c = sub.add_parser("phases", help="phase breakdown, a stacked bar per results folder")
    c.add_argument("results", nargs="+")
    c.add_argument("-o", "--out")
    c.set_defaults(f=cmd_phases)
    c = sub.add_parser("sweep", help="a stat over a varied key")
    c.add_argument("sweep")
    c.add_argument("--x", required=True, help="varied key (a column of sweep.csv)")
    c.add_argument("--y", required=True, help="stat column (as given to --stat)")
    c.add_argument("--series", help="another varied key: one line per value")
    c.add_argument("-o", "--out")
    c.set_defaults(f=cmd_sweep)
    c = sub.add_parser("caches", help="cache hit rates")
    c.add_argument("results", nargs="+")
    c.add_argument("-o", "--out")
    c.set_defaults(f=cmd_caches)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
