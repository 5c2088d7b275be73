"""The figures Postgres holds, read at scrape time: a prometheus_client custom collector.

LLM calls, tokens, refusals and failures (``biz.ai_call_ledger``), memoization hits
(``biz.ai_memo_hits``), the token budget (the budget guard's own query), the circuit breakers
(``biz.ai_circuit_breaker``) and the event inbox (``biz.ai_events``) are written by every process
that calls the LLM, Dagster's run workers included: Postgres is the one truth, so they are read
from it when scraped, never counted in an API process's memory. The counters are totals over
the rows kept (a ledger purge reads as a counter reset, which ``rate()`` takes in its stride).

Blocking (psycopg's sync connection, one per scrape): the API route runs it in a worker thread,
the scrape port's server in its own thread. A database that does not answer gives
``zqyy_metrics_db_up 0`` and none of these families; the process's own metrics still come.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from psycopg.rows import dict_row

from zqyy_assets.core import db
from zqyy_assets.core.apps import APP_NAMES
from zqyy_assets.core.llm import budget
from zqyy_assets.core.llm.guards import GuardSettings
from zqyy_assets.core.llm.settings import LLMSettings

log = logging.getLogger(__name__)

BREAKER_STATES = ("closed", "open", "half_open")

_CALLS = """
SELECT app_name, site_id, status, count(*) AS calls, COALESCE(sum(tokens_in), 0)::bigint AS tokens_in,
       COALESCE(sum(tokens_out), 0)::bigint AS tokens_out
  FROM biz.ai_call_ledger GROUP BY app_name, site_id, status
"""
_MEMO = """
SELECT app_name, site_id, count(*)::bigint AS hits,
       sum(tokens_in_avoided + tokens_out_avoided)::bigint AS tokens_saved
  FROM biz.ai_memo_hits GROUP BY app_name, site_id
"""
_BREAKERS = "SELECT app_name, state, consecutive_failures FROM biz.ai_circuit_breaker"
_INBOX = """
SELECT count(*) AS pending, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_age_s
  FROM biz.ai_events WHERE status = 'pending'
"""


class PostgresFigures:
    """Registered next to the process's own metrics; ``collect`` queries Postgres each scrape."""

    def __init__(self, database_url: str, llm: LLMSettings, *, connect_timeout_s: int = 5) -> None:
        self._url = database_url
        self._limits = GuardSettings.from_settings(llm).budget
        self._connect_timeout_s = connect_timeout_s

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the families depend on the rows

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("zqyy_metrics_db_up", "1 when the scrape could read the database, else 0.")
        try:
            with psycopg.connect(
                self._url, autocommit=True, row_factory=dict_row, connect_timeout=self._connect_timeout_s
            ) as conn:
                families = list(self._families(conn))
        except psycopg.Error as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, conn: db.DictConnection) -> Iterator[Metric]:
        yield from _ledger(conn.execute(_CALLS).fetchall())
        yield from _memo(conn.execute(_MEMO).fetchall())
        yield from _budget(budget.budget_status(conn, self._limits))
        yield from _breakers(conn.execute(_BREAKERS).fetchall())
        yield from _inbox(conn.execute(_INBOX).fetchone())


def _ledger(rows: list[dict]) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "zqyy_llm_calls",
        "LLM calls by app, site and status: success, failed, running, and the guards' refusals"
        " (circuit_open, rate_limited, budget_exceeded). From the ledger, every process's calls.",
        labels=["app", "site", "status"],
    )
    tokens = CounterMetricFamily(
        "zqyy_llm_tokens",
        "Tokens of LLM calls by app, site, status and direction (in, out).",
        labels=["app", "site", "status", "direction"],
    )
    for r in rows:
        labels = [r["app_name"], str(r["site_id"]), r["status"]]
        calls.add_metric(labels, r["calls"])
        tokens.add_metric([*labels, "in"], r["tokens_in"])
        tokens.add_metric([*labels, "out"], r["tokens_out"])
    yield calls
    yield tokens


def _memo(rows: list[dict]) -> Iterator[Metric]:
    hits = CounterMetricFamily(
        "zqyy_memo_hits", "Answers reused because their input was unchanged (no call made).", labels=["app", "site"]
    )
    saved = CounterMetricFamily(
        "zqyy_memo_tokens_saved",
        "Tokens the calls memoization avoided would have cost (the app's recent average).",
        labels=["app", "site"],
    )
    for r in rows:
        labels = [r["app_name"], str(r["site_id"])]
        hits.add_metric(labels, r["hits"])
        saved.add_metric(labels, r["tokens_saved"])
    yield hits
    yield saved


def _budget(status: budget.BudgetStatus) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "zqyy_llm_budget_tokens",
        "The token budget (all sites): used (in-flight reservations included), limit and left, per period.",
        labels=["period", "kind"],
    )
    for period, used, limit in (
        ("day", status.daily_used, status.daily_limit),
        ("month", status.monthly_used, status.monthly_limit),
    ):
        family.add_metric([period, "used"], used)
        family.add_metric([period, "limit"], limit)
        family.add_metric([period, "left"], max(limit - used, 0))
    yield family


def _breakers(rows: list[dict]) -> Iterator[Metric]:
    """Every app's breaker; an app that never failed has no row and is closed."""
    state = GaugeMetricFamily(
        "zqyy_llm_breaker_state",
        "1 for the circuit breaker's current state of the app, else 0.",
        labels=["app", "state"],
    )
    failures = GaugeMetricFamily(
        "zqyy_llm_breaker_consecutive_failures", "Failures in a row counted by the app's breaker.", labels=["app"]
    )
    known = {r["app_name"]: r for r in rows}
    for app in sorted(set(APP_NAMES) | set(known)):
        row = known.get(app, {"state": "closed", "consecutive_failures": 0})
        for name in BREAKER_STATES:
            state.add_metric([app, name], 1 if row["state"] == name else 0)
        failures.add_metric([app], row["consecutive_failures"])
    yield state
    yield failures


def _inbox(row: dict | None) -> Iterator[Metric]:
    row = row or {"pending": 0, "oldest_age_s": 0.0}
    yield GaugeMetricFamily(
        "zqyy_inbox_pending_events", "Business events waiting in the inbox (status pending).", value=row["pending"]
    )
    yield GaugeMetricFamily(
        "zqyy_inbox_oldest_pending_age_seconds",
        "Age of the oldest pending inbox event, 0 when none waits: the sensors are behind when it grows.",
        value=row["oldest_age_s"],
    )
