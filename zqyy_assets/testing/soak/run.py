"""The chaos soak: the whole system under live traffic and a fault mix, then its invariants.

``bench/bench_soak.py`` (``make soak``) runs it for ten minutes; ``tests/soak`` runs a short one
with fewer faults. Both print one line per invariant and a summary line, and return them.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zqyy_assets.core import db, outbox
from zqyy_assets.core import tokens as token_store
from zqyy_assets.testing.soak import checks, security
from zqyy_assets.testing.soak.clients import Clients
from zqyy_assets.testing.soak.stack import Stack, wait_for

SITE = 1
FAULT_MIX = {"429": 0.10, "500": 0.05, "hang:6000": 0.02, "cut:2": 0.02, "invalid_json": 0.01}
FAULTS = ("pg", "daemon", "api")


@dataclass
class SoakSettings:
    minutes: float = 10.0
    rate: float = 12.0  # live events per minute
    faults: tuple[str, ...] = FAULTS
    mix: dict[str, float] = field(default_factory=lambda: dict(FAULT_MIX))
    pg_down_s: float = 10.0
    seed: int = 7
    days: int = 30  # the demo venue's history
    reads_per_s: float = 8.0
    chat_every_s: float = 3.0
    admin_event_every_s: float = 20.0
    subscribers: int = 2
    drain_s: float = 420.0
    daily_token_limit: int = 10_000_000
    auth_failures_per_minute: int = 20
    workdir: Path | None = None
    pg_name: str = "soak"


@dataclass
class SoakResult:
    checks: list[checks.Check]
    summary: str
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def llm_env(settings: SoakSettings) -> dict[str, str]:
    """The LLM layer's settings for every process: short request time-outs (a hang is a time-out)
    and backoffs scaled to the soak's minutes; the budget the soak checks."""
    return {
        "ZQYY_LLM_REQUEST_TIMEOUT_SECONDS": "4",
        "ZQYY_LLM_ANSWER_DEADLINE_SECONDS": "60",
        "ZQYY_LLM_RETRY_BASE_DELAY_SECONDS": "0.2",
        "ZQYY_LLM_RETRY_MAX_DELAY_SECONDS": "2",
        "ZQYY_LLM_RATE_PER_MINUTE": "1200",
        "ZQYY_LLM_RATE_BURST": "50",
        "ZQYY_LLM_DAILY_TOKEN_LIMIT": str(settings.daily_token_limit),
        "ZQYY_LLM_MONTHLY_TOKEN_LIMIT": str(settings.daily_token_limit * 10),
    }


def issue_tokens(database_url: str) -> dict[str, str]:
    """The soak's bearer tokens: an admin's and a staff member's, and an expired and a revoked one."""
    with db.transaction(database_url) as conn:
        made = {
            "admin": token_store.issue(conn, subject="soak-admin", role="admin", site_ids=[SITE]).token,
            "staff": token_store.issue(conn, subject="soak-staff", role="staff", site_ids=[SITE]).token,
            "expired": token_store.issue(
                conn,
                subject="soak-old",
                role="admin",
                site_ids=[SITE],
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            ).token,
            "revoked": token_store.issue(conn, subject="soak-gone", role="admin", site_ids=[SITE]).token,
        }
        token_store.revoke(conn, token=made["revoked"])
    return made


def drained(database_url: str, dagster_url: str, base: checks.Baseline) -> bool:
    """No event pending or running, no Dagster run queued or going."""
    counts = checks.event_figures(database_url, base)
    if counts["pending"] or counts["running"]:
        return False
    with db.connect(dagster_url) as conn:
        row = conn.execute(
            """SELECT count(*) AS n FROM runs
               WHERE status IN ('QUEUED', 'NOT_STARTED', 'STARTING', 'STARTED', 'CANCELING')"""
        ).fetchone()
    return row is not None and row["n"] == 0


def run_soak(settings: SoakSettings, say: Callable[[str], None] = print) -> SoakResult:
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="soak_"))
    stack = Stack(workdir, pg_name=settings.pg_name, days=settings.days, seed=settings.seed)
    rnd = random.Random(settings.seed)
    began = time.monotonic()
    try:
        stack.start(
            llm_env=llm_env(settings),
            api_env={"AUTH_FAILURES_PER_MINUTE": str(settings.auth_failures_per_minute), "AUTH_CACHE_TTL_S": "10"},
        )
        say(f"soak: up in {time.monotonic() - began:.0f} s (logs in {workdir}); API {stack.api_url}, 2 workers")
        tokens = issue_tokens(stack.database_url)
        base = checks.baseline(stack.database_url)
        stack.fake.script("*", mix=settings.mix, seed=settings.seed)
        security_checks, bad_tokens = security.probe(stack.api_url, SITE, tokens, settings.auth_failures_per_minute)

        clients = Clients(stack.api_url, stack.database_url, SITE, tokens["admin"], tokens["staff"], settings.seed)
        with db.connect(stack.database_url) as conn:
            since = outbox.last_seq(conn, SITE)
        for n in range(settings.subscribers):
            clients.start(f"sub{n}", clients.subscriber, f"subscriber {n + 1}", since)
        clients.start("traffic", clients.traffic, settings.rate, settings.minutes)
        clients.start("admin", clients.admin_events, settings.admin_event_every_s)
        clients.start("reads", clients.reads, settings.reads_per_s)
        clients.start("chats", clients.chats, settings.chat_every_s)

        faults = inject_faults(stack, settings, rnd, say)
        say(f"soak: load over after {settings.minutes:g} min; draining")
        clients.stopping.set()  # the subscribers listen on (``unsubscribing``) through the drain
        for thread in clients.threads:
            if not thread.name.startswith("soak-sub"):
                thread.join(timeout=60)
        drain_began = time.monotonic()
        try:
            wait_for(
                lambda: drained(stack.database_url, stack.dagster_url, base),
                settings.drain_s,
                "the events and runs to drain",
                interval=2,
            )
            wait_for(
                lambda: checks.missing_pushes(stack.database_url, base, clients.record) == 0,
                60,
                "every push to reach the subscribers",
                interval=1,
            )
        except RuntimeError as exc:
            say(f"soak: {exc}")
        say(f"soak: drained in {time.monotonic() - drain_began:.0f} s")
        clients.stop()

        stack.dump("chats.json", [vars(c) for c in clients.record.chats])
        stack.dump("faults.json", vars(faults))
        upstream = stack.fake.summary()
        received = stack.fake.requests()
        stack.dump("upstream.json", [{k: v for k, v in r.items() if k != "prompt"} for r in received])
        billed = {r["request_id"]: r["tokens_in"] + r["tokens_out"] for r in received}
        event_check, counts, lost = checks.check_events(stack.database_url, base, clients.record)
        twice_check, twice = checks.check_run_once(stack.database_url, stack.dagster_url)
        ledger_check, same = checks.check_ledger(stack.database_url, upstream, billed, faults)
        api_check, five_hundreds = checks.check_api(clients.record, faults)
        results = [
            event_check,
            twice_check,
            ledger_check,
            checks.check_budget(stack.database_url, settings.daily_token_limit, 2 + len(faults.api_kills)),
            checks.check_cache(stack.database_url),
            api_check,
            checks.check_chats(stack.database_url, clients.record, faults),
            checks.check_realtime(stack.database_url, base, clients.record),
            *security_checks,
        ]
    finally:
        stack.stop()
    secrets = {"API key": stack.api_key, **{f"{k} token": v for k, v in tokens.items()}}
    secrets.update({f"bad token {i}": t for i, t in enumerate(bad_tokens)})
    results.append(checks.check_logs(stack.log_files(), secrets))
    for check in results:
        say(check.line())
    total = sum(v for k, v in counts.items() if k != "failed_without_reason")
    summary = (
        f"soak: {settings.minutes:g} min, events {total:,} (completed {counts['completed']:,}, failed "
        f"{counts['failed']:,} with reason, skipped as duplicates {counts['skipped_duplicate']:,}), lost {lost}, "
        f"run twice {twice}, API 5xx {five_hundreds}, ledger == upstream: {same}, faults: "
        f"pg restart {len(faults.pg_down)}, daemon kill {len(faults.daemon_kills)}, api kill {len(faults.api_kills)}"
        f"{'' if all(c.ok for c in results) else '; FAILED: ' + ', '.join(c.name for c in results if not c.ok)}"
    )
    say(summary)
    figures = {
        "events": total,
        "completed": counts["completed"],
        "failed": counts["failed"],
        "pg_restarts": len(faults.pg_down),
        "daemon_kills": len(faults.daemon_kills),
        "api_kills": len(faults.api_kills),
        "chat_streams": len(clients.record.chats),
        "pushes": sum(len(got) for got in clients.record.received.values()),
        "answers": len(clients.record.answers),
        "upstream_requests": upstream["requests"],
    }
    return SoakResult(results, summary, figures)


def inject_faults(
    stack: Stack, settings: SoakSettings, rnd: random.Random, say: Callable[[str], None]
) -> checks.Faults:
    """Each fault once, at a random moment in its own slice of the load (so they never overlap)."""
    faults = checks.Faults()
    length = settings.minutes * 60
    slots = {name: (0.15 + 0.27 * i, 0.30 + 0.27 * i) for i, name in enumerate(FAULTS)}
    start = time.monotonic()
    plan = sorted((rnd.uniform(*slots[name]) * length, name) for name in settings.faults)
    for at, name in plan:
        wait = start + at - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the schedule itself
        if name == "pg":
            down = stack.restart_postgres(settings.pg_down_s)
            faults.pg_down.append(down)
            say(
                f"soak: t+{at:.0f} s Postgres stopped for {settings.pg_down_s:g} s, "
                f"back {down[1] - down[0]:.1f} s later"
            )
        elif name == "daemon":
            faults.daemon_kills.append(stack.kill_daemon())
            say(f"soak: t+{at:.0f} s Dagster daemon killed (SIGKILL) and started again")
        else:
            pid, when = stack.kill_api_worker()
            faults.api_kills.append(when)
            say(f"soak: t+{at:.0f} s API worker {pid} killed (SIGKILL)")
    rest = start + length - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    return faults
