"""Chaos soak: live traffic through the whole system under a fault mix, then its invariants.

Brings up what ``make demo`` runs (its own embedded Postgres under .pgdata/soak, the demo venue
and its DWS, the Dagster daemon and webserver, the API with two uvicorn workers) against the fake
DashScope with a fault mix (10 % 429, 5 % 500, 2 % time-outs, 2 % cut streams, 1 % invalid JSON);
feeds live events at ``--rate`` a minute with forced admin events, cached reads, chat streams
(a quarter abandoned) and realtime subscribers; restarts Postgres once (10 s down), kills the
Dagster daemon (SIGKILL, restarted) and an API worker (SIGKILL) at random moments; drains, then
prints one line per invariant and the summary line. Exit status 1 when an invariant failed.

    .venv/bin/python bench/bench_soak.py [--minutes 10] [--rate 12] [--seed 7]   # make soak MINUTES=10 RATE=12
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zqyy_assets.testing.soak.run import FAULTS, SoakSettings, run_soak  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (then it drains)")
    parser.add_argument("--rate", type=float, default=12.0, help="live events a minute")
    parser.add_argument("--seed", type=int, default=7, help="the fault mix's and the traffic's seed")
    parser.add_argument("--faults", default=",".join(FAULTS), help="which to inject: pg,daemon,api")
    parser.add_argument("--drain-s", type=float, default=600.0, help="how long the events and runs may take to drain")
    parser.add_argument("--workdir", type=Path, default=None, help="where the logs go (default: a temporary directory)")
    args = parser.parse_args()
    settings = SoakSettings(
        minutes=args.minutes,
        rate=args.rate,
        seed=args.seed,
        faults=tuple(f for f in args.faults.split(",") if f),
        drain_s=args.drain_s,
        workdir=args.workdir,
    )
    result = run_soak(settings, say=lambda line: print(line, flush=True))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
