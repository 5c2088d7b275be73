"""An alert for every call that did not end in success: a guard's refusal, a timeout, a failure.

The service calls :func:`alert_call` where it books such a call; the alert is counted per
(site, app, alert type) by :func:`zqyy_assets.core.alerts.raise_alert`. Raising an alert never
breaks the call's own outcome: a database error here is logged and the caller goes on to raise
the call's error (as the seed did).
"""

from __future__ import annotations

import logging

from zqyy_assets.core import alerts
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm.ledger import CallRecord
from zqyy_assets.core.vocabulary import ALERT_TYPE_LABELS

logger = logging.getLogger(__name__)


def alert_call(
    conn: DictConnection, record: CallRecord, alert_type: str, detail: str, ledger_id: int | None
) -> alerts.Alert | None:
    """Open or count the alert of this call's (site, app, alert type); never raises."""
    message = f"{record.app_name} {ALERT_TYPE_LABELS[alert_type]}:{detail}"
    try:
        return alerts.raise_alert(
            conn,
            site_id=record.site_id,
            app_type=record.app_name,
            alert_type=alert_type,
            message=message,
            ledger_id=ledger_id,
            dagster_run_id=record.dagster_run_id,
        )
    except Exception:
        logger.exception("could not record the %s alert of %s (ledger %s)", alert_type, record.app_name, ledger_id)
        return None
