#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Whole-platform bench: for every platform, host instructions (callgrind Ir)
per DMA request in the simulation phase, the SystemC kernel's share of them,
and peak RSS / wall time of a native run.

  sim-phase Ir    = Ir(run for duration_us) - Ir(same platform run for 1 ns):
                    elaboration, scenario setup and output writing cancel out.
  DMA requests    = requests arriving upstream at the root complexes plus
                    requests switches routed peer-to-peer (never reaching one).
  SystemC share   = self Ir inside libsystemc (scheduler, events, thread
                    switches, sc_time) in the simulation phase / sim-phase Ir.
  peak RSS, wall  = stats.json "host" of a native (not valgrind) run.

Usage: bench_platforms.py --build BUILD [--binary IOMMUSIM] [--smoke] [--no-valgrind]
                          [--markdown] [--scale] [PLATFORM.json ...]
--smoke runs every platform natively and one short callgrind run (if
valgrind is installed) and checks the figures are sane; ctest runs it so.
The default platforms are platforms/*.json and platforms/*/*.json except
platforms/scale/: those (a million PASIDs, 4,096 endpoints) are measured
with --scale, natively only: whole-process wall time (elaboration and
scenario included) and peak RSS, and their scenario must pass.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ENV = dict(os.environ, SYSC_DISABLE_COPYRIGHT_MESSAGE="1")


def run(binary, platform, out, extra=(), valgrind=None):
    cmd = [binary, "run", platform, "--out", out, "--quiet", *extra]
    if valgrind:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + valgrind, *cmd]
    # A platform whose scenario expects fail still measures: ignore the exit code
    # but require its stats.
    subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    with open(os.path.join(out, "stats.json")) as f:
        return json.load(f)


def self_ir_by_object(path):
    """Self Ir per object file from a callgrind profile (cost lines that follow
    a calls= line are inclusive costs of the call, not self cost)."""
    names, by_obj = {}, {}
    obj, after_call = "?", False
    with open(path) as f:
        for line in f:
            if line.startswith(("ob=", "cob=")):
                # Object names are compressed: "(id) name" defines, "(id)" refers.
                m = re.match(r"c?ob=(?:\((\d+)\))?\s*(.*)", line.strip())
                if m.group(1) and m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("ob="):
                    obj = names.get(m.group(1), m.group(2)) if m.group(1) else m.group(2)
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if after_call:
                    after_call = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    by_obj[obj] = by_obj.get(obj, 0) + int(parts[1])
    return by_obj


def dma_requests(stats, cfg):
    topo = cfg.get("topology", {})
    rcs = topo.get("root_complexes") or ([topo["root_complex"]] if "root_complex" in topo else [])
    total = 0
    for rc in rcs:
        total += stats.get(rc.get("name", "rc0"), {}).get("up_requests", {}).get("value", 0)
    for sw in topo.get("switches", []):
        total += stats.get(sw["name"], {}).get("p2p_direct", {}).get("value", 0)
    return total


def measure(binary, platform, tmp, use_valgrind, duration=None):
    name = os.path.splitext(os.path.basename(platform))[0]
    extra = ["--set", f"duration_us={duration}"] if duration else []
    cfg = json.loads(subprocess.run([binary, "dump-config", platform, *extra], env=ENV, capture_output=True,
                                    text=True, check=True).stdout)
    native = run(binary, platform, os.path.join(tmp, name + ".native"), extra)
    row = {"platform": name, "dma": dma_requests(native, cfg), "rss_mib": native["host"]["peak_rss_kib"] / 1024,
           "wall_s": native["host"]["wall_seconds"]}
    if use_valgrind:
        full, zero = os.path.join(tmp, name + ".cg"), os.path.join(tmp, name + ".cg0")
        # Both callgrind runs read a dumped config (every default spelled out), so parsing costs the same.
        full_path = os.path.join(tmp, name + ".full.json")
        with open(full_path, "w") as f:
            json.dump(cfg, f)
        run(binary, full_path, os.path.join(tmp, name + ".vg"), valgrind=full)
        # The reference run is the same platform without its checks and without the steps timed after
        # its end (validation refuses both, issue 17); neither would do simulation work in 1 ns.
        ref = dict(cfg, duration_us=0.001)
        ref["scenario"] = [s for s in cfg.get("scenario", [])
                           if s.get("op") != "expect" and s.get("at_us", 0) <= ref["duration_us"]]
        ref_path = os.path.join(tmp, name + ".ref.json")
        with open(ref_path, "w") as f:
            json.dump(ref, f)
        run(binary, ref_path, os.path.join(tmp, name + ".vg0"), valgrind=zero)
        a, b = self_ir_by_object(full), self_ir_by_object(zero)
        sim = sum(a.values()) - sum(b.values())
        sysc = sum(v for k, v in a.items() if "libsystemc" in k) - sum(v for k, v in b.items() if "libsystemc" in k)
        row.update(sim_ir=sim, ir_per_dma=sim / row["dma"] if row["dma"] else float("nan"),
                   systemc_share=sysc / sim if sim > 0 else float("nan"))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="build directory (holds iommusim)")
    ap.add_argument("--binary", help="iommusim binary to measure (default BUILD/iommusim)")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-valgrind", action="store_true",
                    help="skip the smoke's callgrind run (a sanitizer build: valgrind cannot run ASan binaries)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--scale", action="store_true", help="the platforms/scale/ files: wall time and peak RSS only")
    ap.add_argument("platforms", nargs="*")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = args.binary or os.path.join(args.build, "iommusim")
    scale_dir = os.path.join(root, "platforms", "scale")
    if args.scale:
        return scale(binary, args.platforms or sorted(glob.glob(os.path.join(scale_dir, "*.json"))), args.markdown)
    platforms = args.platforms or sorted(glob.glob(os.path.join(root, "platforms", "*.json")) +
                                         [p for p in glob.glob(os.path.join(root, "platforms", "*", "*.json"))
                                          if os.path.dirname(p) != scale_dir])
    have_valgrind = shutil.which("valgrind") is not None and not args.no_valgrind
    rows = []
    head = {"platform": "platform", "dma": "DMA requests", "sim_ir": "sim-phase Ir", "ir_per_dma": "Ir / DMA request",
            "systemc_share": "SystemC share", "rss_mib": "peak RSS MiB", "wall_s": "wall s"}
    print(fmt(head, args.markdown, header=True))
    if args.markdown:
        print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(platforms):
            if args.smoke:
                # Natively each platform as shipped; callgrind on the first one, briefly.
                row = measure(binary, p, tmp, False)
                if i == 0 and have_valgrind:
                    row.update(measure(binary, p, tmp, True, duration=20))
            else:
                if not have_valgrind:
                    sys.exit("bench_platforms: valgrind is needed (scripts/bench installs it)")
                row = measure(binary, p, tmp, True)
            rows.append(row)
            print(fmt(row, args.markdown), flush=True)
    if args.smoke:
        bad = [r["platform"] for r in rows if r["rss_mib"] <= 0 or ("sim_ir" in r and r["sim_ir"] <= 0)]
        if not any(r["dma"] > 0 for r in rows):
            bad.append("no platform made a DMA request")
        if bad:
            sys.exit("bench_platforms smoke: implausible figures for " + ", ".join(bad))


def scale(binary, platforms, markdown):
    """Each platform natively, whole process: wall seconds and peak RSS; its scenario must pass."""
    import time
    print("| platform | wall s (whole run) | peak RSS MiB | scenario steps |" if markdown else
          f"{'platform':<26}{'wall s':>12}{'peak RSS MiB':>14}{'steps':>12}")
    if markdown:
        print("|---|---|---|---|")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in platforms:
            name = os.path.splitext(os.path.basename(p))[0]
            out = os.path.join(tmp, name)
            t0 = time.monotonic()
            r = subprocess.run([binary, "run", p, "--out", out, "--quiet"], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, check=False)
            wall = time.monotonic() - t0
            if r.returncode != 0:
                failed.append(f"{name} (exit {r.returncode}: {r.stderr.strip()[:200]})")
                continue
            with open(os.path.join(out, "stats.json")) as f:
                st = json.load(f)
            rss, steps = st["host"]["peak_rss_kib"] / 1024, st["scenario"]["steps"]["value"]
            print(f"| {name} | {wall:.2f} | {rss:.1f} | {steps:,} |" if markdown else
                  f"{name:<26}{wall:>12.2f}{rss:>14.1f}{steps:>12,}", flush=True)
    if failed:
        sys.exit("bench_platforms --scale: " + "; ".join(failed))


def fmt(r, markdown, header=False):
    if header:
        cells = [r[k] for k in ("platform", "dma", "sim_ir", "ir_per_dma", "systemc_share", "rss_mib", "wall_s")]
        return "| " + " | ".join(cells) + " |" if markdown else "  ".join(
            f"{c:>14}" if k else f"{c:<22}" for k, c in enumerate(cells))
    cells = [r["platform"], f'{r["dma"]:,}',
             f'{r["sim_ir"]:,}' if "sim_ir" in r else "-",
             f'{r["ir_per_dma"]:,.0f}' if "ir_per_dma" in r else "-",
             f'{100 * r["systemc_share"]:.1f} %' if "systemc_share" in r else "-",
             f'{r["rss_mib"]:.1f}', f'{r["wall_s"]:.3f}']
    if markdown:
        return "| " + " | ".join(cells) + " |"
    return "  ".join(f"{c:>14}" if k else f"{c:<22}" for k, c in enumerate(cells))


if __name__ == "__main__":
    main()
