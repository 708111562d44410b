"""Command line behind ``./lab demo``, ``./lab run`` and ``./lab plot``.

    ./lab demo [options]              always-vs-rare: every mode Cluster supports
    ./lab run --help                  lists the experiments and options
    ./lab run EXPERIMENT [options]    runs one; prints the table and the results path
    ./lab run direct                  the direct-serving walkthrough (handofflab.demo)
    ./lab plot DIR                    regenerates plots from a results folder alone
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("handofflab")

DEFAULT_EXPERIMENT = "always-vs-rare"
WALKTHROUGHS = {"direct": "direct serving walkthrough: fetch every document from its owner, "
                          "wrk on 1 KB (handofflab.demo)"}


def _require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("handofflab: experiments build Mininet clusters and need root (run as root)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="the CI-sized profile (seconds; 1 repetition)")
    p.add_argument("--reps", type=int, help="repetitions per point (default: config, 3)")
    p.add_argument("--modes", help="comma-separated subset of frontend,always,rare,proxy,direct; "
                   "MODE@L runs MODE at locality L (e.g. rare@0.9, rare@1/N)")
    p.add_argument("--seed", type=int, help="seed of documents, partition and request streams")
    p.add_argument("--out", type=Path, help="results root (default: results/)")
    p.add_argument("--no-plot", action="store_true", help="skip plotting")


def _run_experiment(name: str, args: argparse.Namespace) -> int:
    from . import experiment

    _require_root()
    modes = args.modes.split(",") if args.modes else None
    rd = experiment.run(name, quick=args.quick, reps=args.reps, modes=modes, seed=args.seed,
                        out_root=args.out, plots=not args.no_plot)
    print(f"\n## {name} — median (min–max) over {rd.manifest['params']['reps']} repetition(s)\n")
    print(rd.table())
    print(f"\nresults: {rd.path}")
    plots = sorted(p.name for p in rd.path.glob("*.png"))
    if plots:
        print(f"plots:   {', '.join(plots)}")
    return 1 if rd.failed or not rd.rows else 0


def main(argv: list[str] | None = None) -> int:
    from . import experiment

    logging.basicConfig(level=os.environ.get("HANDOFFLAB_LOG", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    exps = experiment.available()
    listing = "experiments:\n" + "\n".join(
        f"  {name:15s} {desc}" for name, desc in {**exps, **WALKTHROUGHS}.items())
    parser = argparse.ArgumentParser(prog="./lab", description="handofflab experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help=f"run the default experiment ({DEFAULT_EXPERIMENT})")
    _add_run_options(demo)
    run = sub.add_parser("run", help="run one experiment",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog=listing + "\n\nmodes Cluster does not implement yet are skipped "
                         "and listed in the summary; results go to results/EXPERIMENT/<time>/ "
                         "(and results/EXPERIMENT/latest)")
    run.add_argument("experiment", choices=sorted({**exps, **WALKTHROUGHS}), metavar="EXPERIMENT",
                     help="one of: " + ", ".join(sorted({**exps, **WALKTHROUGHS})))
    _add_run_options(run)
    plot = sub.add_parser("plot", help="regenerate plots from a results folder")
    plot.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                      help="results/<experiment>/<time> (or results/<experiment>)")
    args = parser.parse_args(argv)

    if args.command == "plot":
        from .plot import plot_results

        for d in args.dirs:
            for f in plot_results(d):
                print(f)
        return 0
    name = DEFAULT_EXPERIMENT if args.command == "demo" else args.experiment
    if name == "direct":
        from .demo import direct_demo

        _require_root()
        direct_demo(out=sys.stdout)
        return 0
    return _run_experiment(name, args)


if __name__ == "__main__":
    sys.exit(main())
