"""``zqyy demo``: bring up the whole stack on one machine, reusing what an earlier run built.

Order: Postgres (embedded unless DATABASE_URL is set) and migrations -> the demo venue (only
if ODS is empty) -> DWS materialized as a Dagster run (only if behind ODS) -> Dagster UI with
its daemon and the API as child processes. Ctrl-C stops every process this command started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.serving import UVICORN_OPTIONS
from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.migrations import prepare_databases
from zqyy_assets.core.settings import VenueSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Beta notices (single-run backfills) are for authors, not for someone watching the demo start.
warnings.filterwarnings("ignore", message=".*is currently in beta.*")


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _prepare_environment(venue: VenueSettings) -> tuple[str, bool]:
    """Export DATABASE_URL / DAGSTER_PG_URL / DAGSTER_HOME and the venue's calendar for this
    process and the services it starts, so they all see the same database and calendar."""
    app_url, started_embedded = embedded_pg.app_database_url()
    applied = prepare_databases(app_url)
    where = "embedded" if started_embedded else "DATABASE_URL"
    _say(f"database ready ({where}); migrations applied now: {applied or 'none'}")

    os.environ["DATABASE_URL"] = app_url
    os.environ.setdefault("DAGSTER_PG_URL", db.dagster_storage_url(app_url))
    os.environ["VENUE_TIMEZONE"] = venue.venue_timezone
    os.environ["BUSINESS_DAY_CUTOFF_HOURS"] = str(venue.business_day_cutoff_hours)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.unlink(missing_ok=True)  # refreshed each start so edits to the repo's dagster.yaml apply
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", target)
    return app_url, started_embedded


def _ensure_demo_venue(app_url: str, venue: VenueSettings, sites: int, days: int, seed: int) -> None:
    with db.connect(app_url) as conn:
        existing = conn.execute("SELECT count(*) AS n FROM ods.sites").fetchone()["n"]
    if existing:
        _say(f"ODS already holds {existing} site(s); keeping them")
        return
    from zqyy_assets.core.business_date import business_date
    from zqyy_assets.tools.demo_venue import generate_demo_venue

    # Whole days up to the last closed business day; live traffic fills the current one.
    end_date = business_date(datetime.now(UTC), venue.venue_timezone, venue.business_day_cutoff_hours) - timedelta(
        days=1
    )
    _say(f"generating the demo venue: {sites} site(s) x {days} days to {end_date} (seed {seed})")
    counts = generate_demo_venue(
        app_url,
        sites=sites,
        days=days,
        seed=seed,
        end_date=end_date,
        timezone=venue.venue_timezone,
        cutoff_hours=venue.business_day_cutoff_hours,
    )
    _say("loaded " + ", ".join(f"{table} {n}" for table, n in counts.items()))


def _ensure_dws(app_url: str, venue: VenueSettings) -> None:
    import dagster as dg

    from zqyy_assets.defs.resources import VenueCalendarResource
    from zqyy_assets.tools.dws_refresh import materialize_dws, ods_date_range

    calendar = VenueCalendarResource(
        timezone=venue.venue_timezone, business_day_cutoff_hours=venue.business_day_cutoff_hours
    )
    span = ods_date_range(app_url, calendar)
    if span.first is None:
        _say("ODS has no settlements; nothing to materialize")
        return
    if span.dws_is_current:
        _say(f"DWS is current (through {span.dws_last})")
        return
    _say(f"materializing DWS for {span.first}..{span.last} as one Dagster run")
    started = time.perf_counter()
    result = materialize_dws(dg.DagsterInstance.get(), app_url, span.first, span.last, calendar)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    _say(f"DWS done in {time.perf_counter() - started:.1f} s; checks: {checks}")


def _ensure_finance_insights(app_url: str) -> None:
    """The 72 app2 answers per active site, as one prewarm run; memoization makes a repeat free."""
    import dagster as dg

    from zqyy_assets.defs.ai.jobs import materialize_app2_prewarm
    from zqyy_assets.defs.ai.resources import LLMResource

    llm = LLMResource(database_url=app_url)
    provider = llm.llm_settings().resolved_provider()
    _say(
        f"prewarming finance insights (72 per active site) with provider '{provider}'"
        + (" - no DASHSCOPE_API_KEY, answers computed offline from the figures" if provider == "offline" else "")
    )
    started = time.perf_counter()
    result = materialize_app2_prewarm(dg.DagsterInstance.get(), database_url=app_url, llm=llm, trigger="demo")
    outcome = "ok" if result.success else "with failures (see the run in the Dagster UI)"
    _say(f"prewarm finished {outcome} in {time.perf_counter() - started:.1f} s")


def _issue_demo_token(app_url: str) -> str:
    """An admin token for the demo's sites, valid one day, so the API can be tried at once."""
    from zqyy_assets.core.tokens import issue

    with db.transaction(app_url) as conn:
        sites = [r["site_id"] for r in conn.execute("SELECT site_id FROM ods.sites ORDER BY site_id")]
        issued = issue(
            conn,
            subject="demo-admin",
            role="admin",
            site_ids=sites or [1],
            note="make demo",
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
    return issued.token


def _start_services(host: str, dagster_port: int, api_port: int) -> list[subprocess.Popen]:
    bin_dir = Path(sys.executable).parent
    # Own session: a terminal Ctrl-C reaches only this runner, which then stops each child once
    # (a second SIGINT would cut dagster dev's shutdown short). SIGINT is reset to default in the
    # child because a shell starts background jobs with it ignored, and Python keeps that.
    common = {
        "cwd": PROJECT_ROOT,
        "env": os.environ.copy(),
        "start_new_session": True,
        "preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    }
    dagster = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", host, "-p", str(dagster_port)], **common
    )
    api = subprocess.Popen(
        [str(bin_dir / "uvicorn"), "api.main:app", "--host", host, "--port", str(api_port), *UVICORN_OPTIONS], **common
    )
    return [dagster, api]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(*, sites: int, days: int, seed: int, host: str, dagster_port: int, api_port: int, serve: bool) -> int:
    # Ctrl-C and `kill` both stop the stack cleanly, also when started as a background job.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    venue = VenueSettings()
    app_url, started_embedded = _prepare_environment(venue)
    children: list[subprocess.Popen] = []
    try:
        _ensure_demo_venue(app_url, venue, sites, days, seed)
        _ensure_dws(app_url, venue)
        _ensure_finance_insights(app_url)
        if not serve:
            return 0
        os.environ.setdefault("DAGSTER_GRAPHQL_URL", f"http://{host}:{dagster_port}/graphql")
        children = _start_services(host, dagster_port, api_port)
        token = _issue_demo_token(app_url)
        _say(f"Dagster UI: http://{host}:{dagster_port}")
        _say(f"API:       http://{host}:{api_port}/docs  (health: /api/health)")
        _say(f"admin token for the demo sites (valid 1 day): {token}")
        _say(
            f"  try: curl -H 'Authorization: Bearer {token}' "
            f"'http://{host}:{api_port}/api/ai/finance/insights?site_id=1&time_dimension=this_month&area=all'"
        )
        _say("  live traffic (sensors fire, answers appear): .venv/bin/zqyy live-traffic --rate 6 --minutes 5")
        _say("Ctrl-C stops everything this command started")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        _say("a service exited; stopping the rest")
        return 1
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            # Code servers dagster dev spawned share its process group: leave none behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        if started_embedded:
            embedded_pg.stop("demo")
            _say("embedded Postgres stopped")


def cmd_demo(args: argparse.Namespace) -> None:
    sys.exit(
        run_demo(
            sites=args.sites,
            days=args.days,
            seed=args.seed,
            host=args.host,
            dagster_port=args.dagster_port,
            api_port=args.api_port,
            serve=not args.no_serve,
        )
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="bring up Postgres, the demo venue, DWS, the Dagster UI and the API")
    p.add_argument("--sites", type=int, default=2)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dagster-port", type=int, default=3000)
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="prepare data and DWS, then exit")
    p.set_defaults(func=cmd_demo)
