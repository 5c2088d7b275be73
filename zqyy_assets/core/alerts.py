"""Alerts (``biz.ai_alerts``): one open alert per (site, app, alert type), counting occurrences.

Raised by the LLM service for every call that did not end in success (a guard's refusal, a
timeout, a failure; ``core/llm/service.py``), so Dagster run workers and the API's chat raise
them alike, and by the run-failure sensor for failed runs (``defs/events/status_sensors.py``).

Flood control: while an alert is open (``pending``), a new occurrence of the same kind adds one
to ``occurrences`` and moves ``last_seen_at`` and the message on; it writes no row and pushes
nothing. The first occurrence INSERTs the row, and the INSERT trigger of migration 0012/0013
pushes ``alert_created``. Once acknowledged or ignored the alert is closed and the next
occurrence opens (and pushes) a new one. An alert with no site (a run over every site) is its
own group, shown to every site's admins and pushed to none.

A run is counted once per alert type (``biz.ai_alert_runs``): a run-failure sensor that sees
the same run again does not count it twice, and a run whose failed call already raised an alert
of that type is not counted again as a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.vocabulary import ALERT_TYPES

MAX_MESSAGE_CHARS = 2000

_UPSERT = """
INSERT INTO biz.ai_alerts AS a (site_id, app_type, alert_type, error_message, ledger_id, dagster_run_id, event_id)
VALUES (%(site_id)s, %(app_type)s, %(alert_type)s, %(message)s, %(ledger_id)s, %(run_id)s,
        (SELECT id FROM biz.ai_events WHERE id = %(event_id)s))
ON CONFLICT ((coalesce(site_id, -1)), app_type, alert_type) WHERE alert_status = 'pending'
DO UPDATE SET occurrences = a.occurrences + 1, last_seen_at = now(), error_message = EXCLUDED.error_message
RETURNING id, occurrences, (xmax = 0) AS created
"""


@dataclass(frozen=True)
class Alert:
    id: int
    occurrences: int
    created: bool  # a new open alert (pushed), not a counted repeat


def raise_alert(
    conn: DictConnection,
    *,
    site_id: int | None,
    app_type: str,
    alert_type: str,
    message: str,
    ledger_id: int | None = None,
    dagster_run_id: str | None = None,
    event_id: int | None = None,
    once_per_run: bool = False,
) -> Alert | None:
    """Open or count the alert, in its own transaction (nested in the caller's if any).

    ``once_per_run``: count ``dagster_run_id`` at most once for this alert type (the run-failure
    sensor); returns None when it was counted already. Otherwise (a call) the occurrence always
    counts, and the run is marked as counted for the type.
    """
    if alert_type not in ALERT_TYPES:
        raise ValueError(f"unknown alert type {alert_type!r}: one of {', '.join(ALERT_TYPES)}")
    with conn.transaction():
        if once_per_run and dagster_run_id:
            claimed = conn.execute(
                """INSERT INTO biz.ai_alert_runs (dagster_run_id, alert_type) VALUES (%s, %s)
                   ON CONFLICT DO NOTHING RETURNING dagster_run_id""",
                (dagster_run_id, alert_type),
            ).fetchone()
            if claimed is None:
                return None
        row = conn.execute(
            _UPSERT,
            {
                "site_id": site_id,
                "app_type": app_type,
                "alert_type": alert_type,
                "message": message[:MAX_MESSAGE_CHARS],
                "ledger_id": ledger_id,
                "run_id": dagster_run_id,
                "event_id": event_id,
            },
        ).fetchone()
        assert row is not None  # an upsert returns its row
        if dagster_run_id:
            conn.execute(
                """INSERT INTO biz.ai_alert_runs (dagster_run_id, alert_type, alert_id) VALUES (%s, %s, %s)
                   ON CONFLICT (dagster_run_id, alert_type) DO UPDATE SET alert_id = EXCLUDED.alert_id
                   WHERE biz.ai_alert_runs.alert_id IS NULL""",
                (dagster_run_id, alert_type, row["id"]),
            )
    return Alert(id=int(row["id"]), occurrences=int(row["occurrences"]), created=bool(row["created"]))
