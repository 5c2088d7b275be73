"""The member prompts: App3 (consumption clues), App6 (note analysis), App7 (customer analysis)
and App8 (clue consolidation), each about one member of one site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zqyy_assets.core import cache
from zqyy_assets.core.business_date import DEFAULT_TIMEZONE
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.partition_keys import MemberKey
from zqyy_assets.core.prompts.common import NothingToAsk, iso_date, local_time, money
from zqyy_assets.core.prompts.member_figures import (
    FRONT_DESK,
    member_assistants,
    member_block,
    member_core,
    note_entry,
    profile_block,
)
from zqyy_assets.core.prompts.references import References
from zqyy_assets.core.vocabulary import AREA_LABELS

RECENT_SETTLEMENTS = 15
RECENT_NOTES = 10


def _recent_settlements(conn: DictConnection, site_id: int, member_id: int, tz: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT s.settlement_id, s.area_code, s.settled_at, s.table_minutes, s.table_fee, s.assistant_fee,
                  s.goods_amount, s.discount, s.total, s.pay_method,
                  COALESCE((SELECT string_agg(DISTINCT a.name, '、' ORDER BY a.name)
                            FROM ods.assistant_services x
                            JOIN ods.assistants a USING (site_id, assistant_id)
                            WHERE x.site_id = s.site_id AND x.settlement_id = s.settlement_id), '') AS assistants
           FROM ods.settlements s
           WHERE s.site_id = %s AND s.member_id = %s
           ORDER BY s.settled_at DESC, s.settlement_id DESC
           LIMIT %s""",
        (site_id, member_id, RECENT_SETTLEMENTS),
    ).fetchall()
    return [
        {
            "settled_at": local_time(r["settled_at"], tz),
            "area": r["area_code"],
            "area_label": AREA_LABELS.get(r["area_code"], r["area_code"]),
            "table_minutes": r["table_minutes"],
            "table_fee": money(r["table_fee"]),
            "assistant_fee": money(r["assistant_fee"]),
            "goods_amount": money(r["goods_amount"]),
            "discount": money(r["discount"]),
            "total": money(r["total"]),
            "pay_method": r["pay_method"],
            "assistants": r["assistants"] or None,
        }
        for r in rows
    ]


def _recent_recharges(conn: DictConnection, site_id: int, member_id: int, tz: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT amount, bonus, pay_method, recharged_at FROM ods.recharges
           WHERE site_id = %s AND member_id = %s ORDER BY recharged_at DESC, recharge_id DESC LIMIT 5""",
        (site_id, member_id),
    ).fetchall()
    return [
        {
            "recharged_at": local_time(r["recharged_at"], tz),
            "amount": money(r["amount"]),
            "bonus": money(r["bonus"]),
            "pay_method": r["pay_method"],
        }
        for r in rows
    ]


def _latest_clues(
    conn: DictConnection, site_id: int, app_name: str, target_id: str
) -> tuple[list[dict[str, Any]], cache.CachedAnswer | None]:
    """The clues of the app's newest valid answer for the member (its last good one), and that answer."""
    row = cache.latest_valid(conn, site_id, app_name, target_id)
    if row is None:
        return [], None
    clues = row.result_json.get("clues") or []
    keep = ("category", "emoji", "summary", "detail", "providers")
    return [{k: c[k] for k in keep if k in c} for c in clues if isinstance(c, dict)], row


def _member_refs(refs: References, key: MemberKey, core: dict[str, Any]) -> None:
    refs.note(site_id=key.site_id, member_id=key.member_id, as_of_date=iso_date(core.get("as_of_date")))
    refs.table("ods.members", 1)
    refs.table("dws.member_profile", 1 if core.get("as_of_date") is not None else 0)


def build_app3_prompt(
    conn: DictConnection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE, refs: References | None = None
) -> dict[str, Any]:
    """App3 (consumption clues): the member's profile and recent visits, recharges, assistants."""
    refs = refs if refs is not None else References()
    core = member_core(conn, key.site_id, key.member_id)
    settlements = _recent_settlements(conn, key.site_id, key.member_id, tz)
    if not settlements:
        raise NothingToAsk("the member has no settlements yet")
    recharges = _recent_recharges(conn, key.site_id, key.member_id, tz)
    assistants = member_assistants(conn, key.site_id, key.member_id, tz)
    _member_refs(refs, key, core)
    refs.table("ods.settlements", len(settlements))
    refs.table("ods.recharges", len(recharges))
    refs.table("dws.assistant_member", len(assistants))
    return {
        "site_id": key.site_id,
        "member": member_block(core, key.member_id, tz),
        "profile": profile_block(core, tz),
        "recent_settlements": settlements,
        "recent_recharges": recharges,
        "assistants": assistants,
    }


def build_app7_prompt(
    conn: DictConnection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE, refs: References | None = None
) -> dict[str, Any]:
    """App7 (customer analysis): App3's figures plus the consolidated clues (App8, else App3)."""
    refs = refs if refs is not None else References()
    prompt = build_app3_prompt(conn, key, tz=tz, refs=refs)
    clues, row = _latest_clues(conn, key.site_id, "app8_consolidation", key.target_id)
    if not clues:
        clues, row = _latest_clues(conn, key.site_id, "app3_clue", key.target_id)
    if clues and row is not None:
        refs.source(row)
    prompt["clues"] = clues
    prompt["clues_source"] = row.cache_type if clues and row else None
    prompt["clues_generated_at"] = local_time(row.created_at, tz) if row else None
    return prompt


@dataclass(frozen=True)
class GivenNote:
    """A note handed to App6 by the caller (the admin's ``run/app6_note``: ``note_content``,
    ``noted_by_name``, ``noted_by_created_at``), analysed instead of the member's newest ODS note,
    which then only gives context. It travels to the run as the run tag ``zqyy/note``."""

    content: str
    noted_by_name: str
    noted_at: datetime | None = None  # aware

    def to_tag(self) -> str:
        at = self.noted_at.isoformat() if self.noted_at else None
        return json.dumps({"content": self.content, "noted_by_name": self.noted_by_name, "noted_at": at})

    @classmethod
    def from_tag(cls, value: str) -> GivenNote:
        try:
            data = json.loads(value)
            at = data.get("noted_at")
            return cls(str(data["content"]), str(data["noted_by_name"]), datetime.fromisoformat(at) if at else None)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"the run's note tag is not a note: {type(exc).__name__}: {exc}") from None


def build_app6_prompt(
    conn: DictConnection,
    key: MemberKey,
    *,
    tz: str = DEFAULT_TIMEZONE,
    note: GivenNote | None = None,
    refs: References | None = None,
) -> dict[str, Any]:
    """App6 (note analysis): the newest note about the member (or the ``note`` given), earlier
    notes as context."""
    refs = refs if refs is not None else References()
    core = member_core(conn, key.site_id, key.member_id)
    notes = conn.execute(
        """SELECT n.note_id, n.content, n.created_at, n.assistant_id, a.name AS author
           FROM ods.notes n LEFT JOIN ods.assistants a USING (site_id, assistant_id)
           WHERE n.site_id = %s AND n.member_id = %s
           ORDER BY n.created_at DESC, n.note_id DESC LIMIT %s""",
        (key.site_id, key.member_id, RECENT_NOTES),
    ).fetchall()
    if note is not None:
        analysed = {
            "note_id": None,
            "note_content": note.content,
            "noted_by_name": note.noted_by_name,
            "noted_at": local_time(note.noted_at, tz),
        }
        earlier = notes[: RECENT_NOTES - 1]
    elif notes:
        latest, earlier = notes[0], notes[1:]
        analysed = {
            "note_id": latest["note_id"],
            "note_content": latest["content"],
            "noted_by_name": latest["author"] or FRONT_DESK,
            "noted_at": local_time(latest["created_at"], tz),
        }
    else:
        raise NothingToAsk("the member has no notes")
    profile = profile_block(core, tz)
    _member_refs(refs, key, core)
    refs.note(note_id=analysed["note_id"])  # None for a note given by the caller
    refs.table("ods.notes", len(notes))
    return {
        "site_id": key.site_id,
        "member": member_block(core, key.member_id, tz),
        **analysed,
        "earlier_notes": [note_entry(n, tz) for n in earlier],
        "member_summary": None
        if profile is None
        else {
            k: profile[k]
            for k in (
                "recency_days",
                "visits_90d",
                "spend_90d",
                "spend_trend_label",
                "favourite_area_label",
                "favourite_time_slot",
            )
        },
    }


def build_app8_prompt(
    conn: DictConnection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE, refs: References | None = None
) -> dict[str, Any]:
    """App8 (clue consolidation): the last good App3 and App6 clues, and the manual clues to respect.

    Either source may be missing (a member with no note has no App6 answer; an App3 that failed
    in this run leaves its previous answer the newest): only neither is nothing to ask."""
    refs = refs if refs is not None else References()
    core = member_core(conn, key.site_id, key.member_id)
    app3, app3_row = _latest_clues(conn, key.site_id, "app3_clue", key.target_id)
    app6, app6_row = _latest_clues(conn, key.site_id, "app6_note", key.target_id)
    if not app3 and not app6:
        raise NothingToAsk("neither App3 nor App6 has clues for the member")
    manual = conn.execute(
        """SELECT category, summary, detail, recorded_by_name FROM biz.member_retention_clue
           WHERE site_id = %s AND member_id = %s AND source = 'manual'
           ORDER BY created_at, id""",
        (key.site_id, key.member_id),
    ).fetchall()
    _member_refs(refs, key, core)
    refs.table("biz.member_retention_clue", len(manual))
    for row in (app3_row, app6_row):
        if row is not None:
            refs.source(row)
    return {
        "site_id": key.site_id,
        "member": member_block(core, key.member_id, tz),
        "app3_clues": app3,
        "app3_generated_at": local_time(app3_row.created_at, tz) if app3_row else None,
        "app6_clues": app6,
        "app6_generated_at": local_time(app6_row.created_at, tz) if app6_row else None,
        "manual_clues": [dict(r) for r in manual],
    }
