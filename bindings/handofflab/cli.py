"""Command line behind ``./lab demo`` and ``./lab run``.

    ./lab demo                 the default experiment
    ./lab run --help           lists the experiments
    ./lab run EXPERIMENT ...   runs one
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

log = logging.getLogger("handofflab")


def _direct(args: argparse.Namespace) -> int:
    from .demo import direct_demo

    direct_demo(out=sys.stdout)
    return 0


# name -> (one-line description, runner). Experiments register here as they land.
EXPERIMENTS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "direct": ("direct serving: a client fetches every document straight from its owner; "
               "wrk connection rate on 1 KB documents", _direct),
}
DEFAULT_EXPERIMENT = "direct"


def _require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("handofflab: experiments build Mininet clusters and need root (run as root)")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("HANDOFFLAB_LOG", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="./lab", description="handofflab experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help=f"run the default experiment ({DEFAULT_EXPERIMENT})")
    run = sub.add_parser(
        "run", help="run one experiment",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="experiments:\n" + "\n".join(
            f"  {name:12s} {desc}" for name, (desc, _) in EXPERIMENTS.items()))
    run.add_argument("experiment", choices=sorted(EXPERIMENTS), metavar="EXPERIMENT",
                     help="one of: " + ", ".join(sorted(EXPERIMENTS)))
    args = parser.parse_args(argv)

    name = DEFAULT_EXPERIMENT if args.command == "demo" else args.experiment
    _require_root()
    return EXPERIMENTS[name][1](args)


if __name__ == "__main__":
    sys.exit(main())
