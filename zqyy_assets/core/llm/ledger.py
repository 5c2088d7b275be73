"""The call ledger (``biz.ai_call_ledger``): one row per call, what it cost (tokens, CNY) and how it ended.

Every call writes exactly one row: ``running`` then ``success``/``failed``/``timeout``, or directly one of
the refusals ``circuit_open``, ``rate_limited``, ``budget_exceeded``. The row of an admitted
call is written by the budget guard (``budget.admit_call``), in the transaction that checked
the budget; everything else about the row's life is here.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.vocabulary import REFUSAL_STATUSES, TIMEOUT


@dataclass(frozen=True)
class CallRecord:
    """What the ledger knows about a call before it is made."""

    site_id: int
    app_name: str
    app_id: str | None
    provider: str
    request_prompt: str
    prompt_version: str | None = None
    model: str | None = None
    session_id: str | None = None
    dagster_run_id: str | None = None
    trigger_type: str = "event"
    target_id: str | None = None
    streamed: bool = False
    fallback_for: str | None = None  # the primary provider a fallback call stands in for (``providers.py``)


def ms_since(started: float) -> int:
    """A call's latency for its row: milliseconds since ``started`` (``time.monotonic()``)."""
    return int((time.monotonic() - started) * 1000)


_INSERT = """
INSERT INTO biz.ai_call_ledger
    (site_id, app_name, app_id, provider, model, status, error_code, error_message,
     tokens_reserved, request_prompt, session_id, prompt_version, dagster_run_id,
     trigger_type, target_id, streamed, fallback_for, finished_at)
VALUES
    (%(site_id)s, %(app_name)s, %(app_id)s, %(provider)s, %(model)s, %(status)s, %(error_code)s,
     %(error_message)s, %(tokens_reserved)s, %(request_prompt)s, %(session_id)s, %(prompt_version)s,
     %(dagster_run_id)s, %(trigger_type)s, %(target_id)s, %(streamed)s, %(fallback_for)s,
     CASE WHEN %(status)s = 'running' THEN NULL ELSE clock_timestamp() END)
RETURNING id
"""


def insert_row(
    conn: DictConnection,
    record: CallRecord,
    *,
    status: str,
    reserved: int = 0,
    error_code: str | None = None,
    error_message: str | None = None,
) -> int:
    """Insert the call's row in the caller's transaction; returns its id."""
    params = {
        **asdict(record),
        "status": status,
        "error_code": error_code,
        "error_message": error_message,
        "tokens_reserved": reserved,
    }
    row = conn.execute(_INSERT, params).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return int(row["id"])


def record_refusal(conn: DictConnection, record: CallRecord, reason: str, message: str) -> int:
    """One ledger row for a call a guard refused."""
    if reason not in REFUSAL_STATUSES:
        raise ValueError(f"not a refusal status: {reason}")
    with conn.transaction():
        return insert_row(conn, record, status=reason, error_code=reason, error_message=message)


def record_failure_before_send(conn: DictConnection, record: CallRecord, code: str, message: str) -> int:
    """One ``failed`` ledger row for a call stopped before any request (configuration, request cap)."""
    with conn.transaction():
        return insert_row(conn, record, status="failed", error_code=code, error_message=message)


def record_running(conn: DictConnection, record: CallRecord) -> int:
    """A ``running`` row outside the budget (the offline provider costs nothing)."""
    with conn.transaction():
        return insert_row(conn, record, status="running")


def note_attempt(conn: DictConnection, ledger_id: int, attempts: int) -> None:
    """A running call is about to send its ``attempts``-th request."""
    conn.execute(
        "UPDATE biz.ai_call_ledger SET attempts = %s WHERE id = %s AND status = 'running'", (attempts, ledger_id)
    )


def finish_call(
    conn: DictConnection,
    ledger_id: int,
    *,
    status: str,
    tokens_in: int = 0,
    tokens_out: int = 0,
    latency_ms: int | None = None,
    attempts: int = 0,
    response_text: str | None = None,
    session_id: str | None = None,
    request_id: str | None = None,
    model: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    cost_cny: float = 0.0,
) -> None:
    """The call's row, final: how it ended, its tokens and their price (``cost_cny``, CNY)."""
    if status not in ("success", "failed", TIMEOUT):
        raise ValueError(f"a finished call is success, failed or timeout, not {status}")
    with conn.transaction():
        conn.execute(
            """
            UPDATE biz.ai_call_ledger
               SET status = %(status)s, tokens_in = %(tokens_in)s, tokens_out = %(tokens_out)s,
                   tokens_reserved = 0, latency_ms = %(latency_ms)s, attempts = %(attempts)s,
                   response_text = %(response_text)s, session_id = COALESCE(%(session_id)s, session_id),
                   request_id = %(request_id)s, model = COALESCE(%(model)s, model),
                   error_code = %(error_code)s, error_message = %(error_message)s,
                   cost_cny = %(cost_cny)s, finished_at = clock_timestamp()
             WHERE id = %(id)s
            """,
            {
                "id": ledger_id,
                "status": status,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "latency_ms": latency_ms,
                "attempts": attempts,
                "response_text": response_text,
                "session_id": session_id,
                "request_id": request_id,
                "model": model or None,
                "error_code": error_code,
                "error_message": error_message,
                "cost_cny": cost_cny,
            },
        )


def note_reask(conn: DictConnection, ledger_id: int, request_prompt: str) -> None:
    """A call re-asks within its own attempts (its answer was not JSON): the row's
    ``request_prompt`` becomes the re-ask's, which quotes the prompt (``Correction.standalone``)."""
    conn.execute("UPDATE biz.ai_call_ledger SET request_prompt = %s WHERE id = %s", (request_prompt, ledger_id))


def call_record_of(conn: DictConnection, ledger_id: int) -> CallRecord:
    """What the ledger row says about the call (to raise its alert after the fact)."""
    row = conn.execute(
        """SELECT site_id, app_name, app_id, provider, request_prompt, prompt_version, model, session_id,
                  dagster_run_id, trigger_type, target_id, streamed, fallback_for
           FROM biz.ai_call_ledger WHERE id = %s""",
        (ledger_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no ledger row {ledger_id}")
    return CallRecord(**row)


def reject_answer(conn: DictConnection, ledger_id: int, reason: str) -> bool:
    """A call that succeeded but whose answer the caller could not use (outside its schema)
    is booked as failed: the dashboard's success rate and the request cap per answer count it
    as what it was. Its tokens were spent and stay counted against the budget."""
    with conn.transaction():
        cur = conn.execute(
            """UPDATE biz.ai_call_ledger SET status = 'failed', error_code = 'InvalidAnswer', error_message = %s
               WHERE id = %s AND status = 'success'""",
            (reason, ledger_id),
        )
    return cur.rowcount == 1


def failed_attempts_for_answer(
    conn: DictConnection, *, dagster_run_id: str, app_name: str, site_id: int, target_id: str | None
) -> int:
    """Requests already spent on this answer in this run since its last success.

    A Dagster step retry re-runs the asset in the same run, and an answer outside its schema
    is asked again: counting what the earlier tries spent keeps one answer under the request
    cap whatever the RetryPolicy says.
    """
    row = conn.execute(
        """
        SELECT COALESCE(SUM(attempts), 0) AS spent
          FROM biz.ai_call_ledger l
         WHERE l.dagster_run_id = %(run)s AND l.app_name = %(app)s AND l.site_id = %(site)s
           AND l.target_id IS NOT DISTINCT FROM %(target)s AND l.status IN ('failed', 'timeout')
           AND l.id > COALESCE((SELECT max(s.id) FROM biz.ai_call_ledger s
                                 WHERE s.dagster_run_id = %(run)s AND s.app_name = %(app)s
                                   AND s.site_id = %(site)s AND s.target_id IS NOT DISTINCT FROM %(target)s
                                   AND s.status = 'success'), 0)
        """,
        {"run": dagster_run_id, "app": app_name, "site": site_id, "target": target_id},
    ).fetchone()
    return int(row["spent"]) if row else 0


# An app's typical call lately: the averages over its last RECENT_CALLS successful calls within
# RECENT_DAYS. The batch estimate takes every such call's tokens; what a memo hit saved takes the
# priced calls only (``priced_only``: not the offline analyst's), since it is money.
RECENT_CALLS = 200
RECENT_DAYS = 30
RECENT_AVERAGES_SQL = """
SELECT app_name, round(avg(tokens_in))::int AS tokens_in, round(avg(tokens_out))::int AS tokens_out,
       round(avg(tokens_used))::bigint AS tokens_used, avg(cost_cny)::float8 AS cost_cny
  FROM (SELECT app_name, tokens_in, tokens_out, tokens_used, cost_cny,
               row_number() OVER (PARTITION BY app_name ORDER BY called_at DESC, id DESC) AS n
          FROM biz.ai_call_ledger
         WHERE app_name = ANY(%(apps)s) AND status = 'success'
           AND (NOT %(priced_only)s OR (provider <> 'offline' AND cost_cny IS NOT NULL))
           AND called_at > now() - make_interval(days => %(days)s)) recent
 WHERE n <= %(calls)s
 GROUP BY app_name
"""


def recent_averages_params(apps: list[str], *, priced_only: bool) -> dict[str, object]:
    return {"apps": apps, "priced_only": priced_only, "days": RECENT_DAYS, "calls": RECENT_CALLS}
