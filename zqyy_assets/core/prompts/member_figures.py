"""The member figures the member and the assistant x member prompts share: the member's basics,
their ``dws.member_profile`` under the names the apps read, and the assistants who serve them.
"""

from __future__ import annotations

from typing import Any

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.prompts.common import NothingToAsk, iso_date, local_date, local_time, money
from zqyy_assets.core.vocabulary import AREA_LABELS

TIME_SLOT_LABELS = {"morning": "上午", "afternoon": "下午", "evening": "晚上", "late_night": "深夜"}
TREND_LABELS = {"up": "上升", "down": "下降", "flat": "持平", "new": "新客", "inactive": "不活跃"}
FRONT_DESK = "前台"  # the author of a note no assistant signed


def member_core(conn: DictConnection, site_id: int, member_id: int) -> dict[str, Any]:
    """Member basics and ``dws.member_profile`` under the names the apps read; raises when unknown."""
    row = conn.execute(
        """SELECT m.name, m.gender, m.level, m.registered_at, p.*, a.name AS fav_assistant_name
           FROM ods.members m
           LEFT JOIN dws.member_profile p USING (site_id, member_id)
           LEFT JOIN ods.assistants a ON a.site_id = m.site_id AND a.assistant_id = p.favourite_assistant_id
           WHERE m.site_id = %s AND m.member_id = %s""",
        (site_id, member_id),
    ).fetchone()
    if row is None:
        raise NothingToAsk(f"member {member_id} does not exist at site {site_id}")
    return row


def member_block(row: dict[str, Any], member_id: int, tz: str) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "member_name": row["name"],
        "gender": row["gender"] or None,
        "member_level": row["level"],
        "registered_on": iso_date(local_date(row["registered_at"], tz)) if row["registered_at"] else None,
    }


def profile_block(row: dict[str, Any], tz: str) -> dict[str, Any] | None:
    if row.get("as_of_date") is None:
        return None
    return {
        "as_of_date": iso_date(row["as_of_date"]),
        "first_visit_at": local_time(row["first_visit_at"], tz),
        "last_visit_at": local_time(row["last_visit_at"], tz),
        "recency_days": row["recency_days"],
        "visits_30d": row["visits_30d"],
        "visits_90d": row["visits_90d"],
        "visits_180d": row["visits_180d"],
        "spend_30d": money(row["spend_30d"]),
        "spend_prev_30d": money(row["spend_prev_30d"]),
        "spend_90d": money(row["spend_90d"]),
        "spend_180d": money(row["spend_180d"]),
        "spend_trend": row["spend_trend"],
        "spend_trend_label": TREND_LABELS.get(row["spend_trend"], row["spend_trend"]),
        "recharge_180d": money(row["recharge_180d"]),
        "favourite_area": row["favourite_area"],
        "favourite_area_label": AREA_LABELS.get(row["favourite_area"]) if row["favourite_area"] else None,
        "favourite_time_slot": TIME_SLOT_LABELS.get(row["favourite_time_slot"]) if row["favourite_time_slot"] else None,
        "favourite_assistant_id": row["favourite_assistant_id"],
        "favourite_assistant_name": row["fav_assistant_name"],
    }


def member_assistants(conn: DictConnection, site_id: int, member_id: int, tz: str) -> list[dict[str, Any]]:
    """The three assistants who served the member most."""
    rows = conn.execute(
        """SELECT am.assistant_id, a.name, am.services, am.minutes, am.fees, am.last_service_at
           FROM dws.assistant_member am JOIN ods.assistants a USING (site_id, assistant_id)
           WHERE am.site_id = %s AND am.member_id = %s
           ORDER BY am.services DESC, am.assistant_id LIMIT 3""",
        (site_id, member_id),
    ).fetchall()
    return [
        {
            "assistant_id": r["assistant_id"],
            "assistant_name": r["name"],
            "service_count": r["services"],
            "service_minutes": int(r["minutes"]),
            "service_fees": money(r["fees"]),
            "last_service_at": local_time(r["last_service_at"], tz),
        }
        for r in rows
    ]


def note_entry(row: dict[str, Any], tz: str) -> dict[str, Any]:
    """A note as the prompts list it; ``row`` has the note's content, created_at and author."""
    return {
        "content": row["content"],
        "noted_by_name": row["author"] or FRONT_DESK,
        "noted_at": local_time(row["created_at"], tz),
    }
