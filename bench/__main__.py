"""python -m bench [PART ...]: run the benchmarks (all parts by default) and write the results.

Parts: throughput, batch, swap, promotion, download, memory, idle, front, mpm, replicas,
challenger, isolation, peers, v2, guard. Each writes its section of bench/results.md and
bench/results.json (the other sections are kept). Bounded: about 12 minutes for all but replicas
on a 2-core machine, plus about 5 for replicas (N = 1, 5, 10, 20), about 4 for peers (MLServer
and KServe, `make peers`) and about 4 for guard (20 promotions under load). A part that fails
replaces its section with one saying so. Needs wrk and curl (`make system-deps`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

from . import report
from .common import workspace

PARTS = ("throughput", "batch", "swap", "promotion", "download", "memory", "idle", "front", "mpm",
         "replicas", "challenger", "isolation", "peers", "v2", "guard")


def main(argv: list[str] | None = None) -> int:
    """Run the named parts (all by default); exit 1 if any part failed to run."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", choices=[*PARTS, []], metavar="PART",
                        help="parts to run: " + ", ".join(PARTS) + " (default: all)")
    parser.add_argument("--render", action="store_true",
                        help="only re-render results.md from results.json (stale flags now)")
    args = parser.parse_args(argv)
    if args.render:
        report.write(report.load())
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    failed = []
    started = time.monotonic()
    for name in args.parts or PARTS:
        print(f"bench: {name} ...", flush=True)
        begun = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        try:
            with workspace(name) as work:
                section = module.run(work)
        except Exception as exc:
            traceback.print_exc()
            failed.append(name)
            report.save_failure(name, f"{type(exc).__name__}: {exc}", time.monotonic() - begun,
                                list(PARTS))
            continue
        seconds = time.monotonic() - begun
        report.save(name, section, seconds, list(PARTS))
        for target in section.targets:
            verdict = "met" if target.met else "NOT MET"
            print(f"  {target.name}: {target.measured} (goal {target.goal}) {verdict}")
        print(f"bench: {name} done in {seconds:.0f} s", flush=True)
    print(f"bench: {time.monotonic() - started:.0f} s in all; results in {report.RESULTS_MD}")
    if failed:
        print("bench: failed parts: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
