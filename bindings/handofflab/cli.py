"""Command line behind ``./lab demo``, ``./lab run`` and ``./lab plot``.

    ./lab demo [options]              always-vs-rare: every mode Cluster supports
    ./lab run --help                  lists the experiments and options
    ./lab run EXPERIMENT [options]    runs one; prints the table and the results path
    ./lab run direct                  the direct-serving walkthrough (handofflab.demo)
    ./lab plot DIR                    regenerates plots from a results folder alone
    ./lab compare A B                 B's figures against A's: ratios, verdicts, compare.png
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("handofflab")

DEFAULT_EXPERIMENT = "always-vs-rare"
WALKTHROUGHS = {"direct": "direct serving walkthrough: fetch every document from its owner, "
                          "wrk on 1 KB (handofflab.demo)"}


def _require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("handofflab: experiments build Mininet clusters and need root (run as root)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .impair import WAN_DELAY_MS, WAN_JITTER_MS

    p.add_argument("--quick", action="store_true",
                   help="the CI-sized profile (seconds; 1 repetition)")
    p.add_argument("--reps", type=int, help="repetitions per point (default: config, 3)")
    p.add_argument("--modes", help="comma-separated subset of frontend,always,rare,proxy,direct; "
                   "MODE@L runs MODE at locality L (e.g. rare@0.9, rare@1/N); MODE/DP runs "
                   "an engine mode on data path DP, auto|kernel|nfqueue (e.g. frontend/kernel, "
                   "always/nfqueue, rare@0.9/kernel)")
    p.add_argument("--seed", type=int, help="seed of documents, partition and request streams")
    p.add_argument("--out", type=Path, help="results root (default: results/)")
    p.add_argument("--no-plot", action="store_true", help="skip plotting")
    p.add_argument("--trace", type=Path, metavar="LOG",
                   help="an access log (Common or Combined Log Format): its documents (paths, sizes) "
                   "and requests replace the experiment's document set and request stream "
                   "(replayed as fast as possible, per client); bad lines are counted and skipped")
    p.add_argument("--trace-timing", choices=("fast", "log"),
                   help="with --trace: 'fast' (the default) replays the requests as fast as possible "
                   "(wrk, closed loop); 'log' at the log's own timing (open loop: each request on a new "
                   "connection at its logged time, those of one second spread over it; latency figures)")
    p.add_argument("--trace-speed", type=float, metavar="X",
                   help="with --trace-timing log: replay X times faster than logged (default 1)")
    p.add_argument("--pcap", action="store_true",
                   help="record every host's packets during each measurement (libpcap, headers only: "
                   "snaplen 128, at most 64 MB per host) into the results folder's pcap/, one "
                   "Wireshark-readable file per host and repetition; the summary gives the response "
                   "bytes each host sent (where the bytes flowed)")
    p.add_argument("--servers", metavar="A,B",
                   help="run the hosts on these machines too (Mininet's Cluster Edition over "
                        "root SSH; r0 and the bridges stay here; 'netns': a server made on this "
                        "machine, for a try). See the README's 'Several machines'")
    p.add_argument("--placement", metavar="WHAT:SERVER,...",
                   help="which server runs what: clients, frontends, backends or a host name "
                        "(default: clients here, front-ends on the first server, back-ends on "
                        "the last)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds of load per mode (soak only; default: config, 600)")
    imp = p.add_argument_group(
        "impairments of the client <-> cluster path on r0, per direction, every mode "
        "(default: the experiment's config; none except for soak)")
    imp.add_argument("--delay-ms", type=int, metavar="MS", help="one-way delay")
    imp.add_argument("--jitter-ms", type=int, metavar="MS", help="jitter (+/-) on the delay")
    imp.add_argument("--loss", type=float, metavar="P",
                     help="drop probability in [0, 1) (alone: iptables on every host)")
    imp.add_argument("--reorder", type=float, metavar="P",
                     help="share of packets held 10 ms longer, overtaken by later ones")
    imp.add_argument("--duplicate", type=float, metavar="P", help="share of packets sent twice")
    imp.add_argument("--wan", action="store_true", default=None,
                     help=f"preset: {WAN_DELAY_MS} ms +/- {WAN_JITTER_MS} ms each way unless "
                     "--delay-ms/--jitter-ms say")


def impairment_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The impairment options given ({} when none), checked like Cluster checks
    them (ValueError on a bad value), as cluster overrides of the config."""
    from .experiment import IMPAIRMENT_KEYS
    from .impair import Impairment

    given = {k: getattr(args, k) for k in IMPAIRMENT_KEYS if getattr(args, k, None) is not None}
    Impairment(**{k: v for k, v in given.items() if k != "wan"})
    return given


def _run_experiment(name: str, args: argparse.Namespace) -> int:
    from . import experiment

    _require_root()
    modes = args.modes.split(",") if args.modes else None
    overrides: dict[str, Any] = {}
    impair = impairment_overrides(args)
    if impair:
        overrides["cluster"] = impair
    if args.trace is not None:
        from . import trace

        try:
            print(f"trace {args.trace}: {trace.load(args.trace).summary()}")
        except (OSError, ValueError) as exc:
            sys.exit(f"handofflab: --trace: {exc}")
        overrides["trace"] = str(args.trace.resolve())
    if (args.trace_timing or args.trace_speed is not None) and args.trace is None:
        sys.exit("handofflab: --trace-timing and --trace-speed need --trace")
    if args.trace_speed is not None and args.trace_speed <= 0:
        sys.exit("handofflab: --trace-speed must be > 0")
    if args.trace_timing:
        overrides["trace_timing"] = args.trace_timing
    if args.trace_speed is not None:
        overrides["trace_speed"] = args.trace_speed
    if args.pcap:
        overrides["pcap"] = True
    if args.placement and not args.servers:
        sys.exit("handofflab: --placement needs --servers")
    if args.servers:
        from .multihost import parse_placement

        cluster = overrides.setdefault("cluster", {})
        cluster["servers"] = [s for s in args.servers.split(",") if s]
        try:
            cluster["placement"] = parse_placement(args.placement or "")
        except ValueError as exc:
            sys.exit(f"handofflab: --placement: {exc}")
    if args.duration is not None:
        if "duration_s" not in experiment.load_config(name):
            sys.exit(f"handofflab: --duration applies to the soak experiment, not {name}")
        if args.duration < 1:
            sys.exit("handofflab: --duration must be at least 1 s")
        overrides["duration_s"] = args.duration
    rd = experiment.run(name, quick=args.quick, reps=args.reps, modes=modes, seed=args.seed,
                        out_root=args.out, plots=not args.no_plot, overrides=overrides)
    print(f"\n## {name} — median (min–max) over {rd.manifest['params']['reps']} repetition(s)\n")
    print(rd.table())
    if rd.manifest.get("pcap"):
        print("\n" + rd.pcap_text())
    if rd.verdicts:
        print("\n" + rd.verdict_text())
    print(f"\nresults: {rd.path}")
    plots = sorted(p.name for p in rd.path.glob("*.png"))
    if plots:
        print(f"plots:   {', '.join(plots)}")
    return 1 if rd.failed or not rd.rows or not rd.verdicts_ok() else 0


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
    cmp = sub.add_parser("compare", help="compare two results folders of one experiment (A: the baseline)",
                         description="Every figure of both runs side by side: medians (min-max), B/A, and a "
                         "verdict (better, worse, same within the noise band from the repetitions). "
                         "Writes compare.md and compare.png/svg into B's folder (or --out).")
    cmp.add_argument("a", type=Path, metavar="RESULTS_A", help="the baseline: results/<experiment>/<time>")
    cmp.add_argument("b", type=Path, metavar="RESULTS_B", help="the run judged against it")
    cmp.add_argument("--metrics", help="comma-separated metrics (default: the runs' table metrics)")
    cmp.add_argument("--min-band", type=float, default=0.05, metavar="F",
                     help="smallest noise band, relative (default 0.05)")
    cmp.add_argument("--out", type=Path, help="where compare.md/png go (default: RESULTS_B)")
    cmp.add_argument("--fail-on-worse", action="store_true", help="exit 1 if any figure is worse")
    args = parser.parse_args(argv)
    if args.command == "compare":
        from . import compare

        try:
            figures, text, files = compare.run(
                args.a, args.b, args.metrics.split(",") if args.metrics else None, args.out, args.min_band)
        except (OSError, ValueError, KeyError) as exc:
            cmp.error(str(exc))
        print(text)
        for f in files:
            print(f)
        return 1 if args.fail_on_worse and any(f.verdict == "worse" for f in figures) else 0
    if args.command != "plot":
        try:
            impairment_overrides(args)
        except ValueError as exc:
            (run if args.command == "run" else demo).error(str(exc))

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
