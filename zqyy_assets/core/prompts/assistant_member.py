"""The assistant x member prompts: App4 (the relationship) and App5 (tactics), each about one
assistant and one member of a site.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from zqyy_assets.core import cache
from zqyy_assets.core.business_date import DEFAULT_TIMEZONE
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.partition_keys import AssistantMemberKey
from zqyy_assets.core.prompts.common import NothingToAsk, iso_date, local_date, local_time, money
from zqyy_assets.core.prompts.member_figures import (
    member_assistants,
    member_block,
    member_core,
    note_entry,
    profile_block,
)
from zqyy_assets.core.prompts.references import References
from zqyy_assets.core.vocabulary import AREA_LABELS

RECENT_SERVICES = 10
RECENT_TASKS = 5


def _assistant(conn: DictConnection, site_id: int, assistant_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT name, level, hired_on, is_active FROM ods.assistants WHERE site_id = %s AND assistant_id = %s",
        (site_id, assistant_id),
    ).fetchone()
    if row is None:
        raise NothingToAsk(f"assistant {assistant_id} does not exist at site {site_id}")
    return {
        "assistant_id": assistant_id,
        "assistant_name": row["name"],
        "assistant_level": row["level"],
        "hired_on": iso_date(row["hired_on"]),
        "is_active": row["is_active"],
    }


def _relation(conn: DictConnection, key: AssistantMemberKey, as_of: date | None, tz: str) -> dict[str, Any]:
    row = conn.execute(
        """SELECT services, minutes, fees, first_service_at, last_service_at FROM dws.assistant_member
           WHERE site_id = %s AND assistant_id = %s AND member_id = %s""",
        (key.site_id, key.assistant_id, key.member_id),
    ).fetchone()
    if row is None:
        return {
            "services": 0,
            "minutes": 0,
            "fees": 0.0,
            "first_service_at": None,
            "last_service_at": None,
            "days_since_last_service": None,
        }
    last_local = local_date(row["last_service_at"], tz)
    return {
        "services": row["services"],
        "minutes": int(row["minutes"]),
        "fees": money(row["fees"]),
        "first_service_at": local_time(row["first_service_at"], tz),
        "last_service_at": local_time(row["last_service_at"], tz),
        "days_since_last_service": (as_of - last_local).days if as_of else None,
    }


def _pair_tasks(conn: DictConnection, key: AssistantMemberKey, tz: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT task_type, status, assigned_at, due_at, completed_at FROM ods.tasks
           WHERE site_id = %s AND assistant_id = %s AND member_id = %s
           ORDER BY assigned_at DESC, task_id DESC LIMIT %s""",
        (key.site_id, key.assistant_id, key.member_id, RECENT_TASKS),
    ).fetchall()
    return [
        {
            "task_type": r["task_type"],
            "status": r["status"],
            "assigned_at": local_time(r["assigned_at"], tz),
            "due_at": local_time(r["due_at"], tz),
            "completed_at": local_time(r["completed_at"], tz),
        }
        for r in rows
    ]


def _pair_notes(
    conn: DictConnection, key: AssistantMemberKey, tz: str, *, by_assistant_only: bool
) -> list[dict[str, Any]]:
    """The member's five latest notes: all of them, or only those the assistant wrote."""
    rows = conn.execute(
        f"""SELECT n.content, n.created_at, a.name AS author FROM ods.notes n
            LEFT JOIN ods.assistants a USING (site_id, assistant_id)
            WHERE n.site_id = %s AND n.member_id = %s {"AND n.assistant_id = %s" if by_assistant_only else ""}
            ORDER BY n.created_at DESC, n.note_id DESC LIMIT 5""",
        (key.site_id, key.member_id, key.assistant_id) if by_assistant_only else (key.site_id, key.member_id),
    ).fetchall()
    return [note_entry(r, tz) for r in rows]


def _pair_refs(refs: References, key: AssistantMemberKey, core: dict[str, Any]) -> None:
    refs.note(
        site_id=key.site_id,
        assistant_id=key.assistant_id,
        member_id=key.member_id,
        as_of_date=iso_date(core.get("as_of_date")),
    )
    refs.table("ods.assistants", 1)
    refs.table("ods.members", 1)
    refs.table("dws.member_profile", 1 if core.get("as_of_date") is not None else 0)


def build_app4_prompt(
    conn: DictConnection, key: AssistantMemberKey, *, tz: str = DEFAULT_TIMEZONE, refs: References | None = None
) -> dict[str, Any]:
    """App4 (relationship): the pair's service history, tasks and the assistant's notes on the member."""
    refs = refs if refs is not None else References()
    assistant = _assistant(conn, key.site_id, key.assistant_id)
    core = member_core(conn, key.site_id, key.member_id)
    profile = profile_block(core, tz)
    as_of = core.get("as_of_date")
    services = conn.execute(
        """SELECT x.started_at, x.minutes, x.fee, s.area_code FROM ods.assistant_services x
           JOIN ods.settlements s USING (site_id, settlement_id)
           WHERE x.site_id = %s AND x.assistant_id = %s AND x.member_id = %s
           ORDER BY x.started_at DESC, x.service_id DESC LIMIT %s""",
        (key.site_id, key.assistant_id, key.member_id, RECENT_SERVICES),
    ).fetchall()
    tasks = _pair_tasks(conn, key, tz)
    if not services and not tasks:
        raise NothingToAsk("the assistant has neither served nor been tasked with the member")
    relation = _relation(conn, key, as_of, tz)
    notes = _pair_notes(conn, key, tz, by_assistant_only=True)
    others = [
        a for a in member_assistants(conn, key.site_id, key.member_id, tz) if a["assistant_id"] != key.assistant_id
    ]
    _pair_refs(refs, key, core)
    refs.table("dws.assistant_member", (1 if relation["services"] else 0) + len(others))
    refs.table("ods.assistant_services", len(services))
    refs.table("ods.tasks", len(tasks))
    refs.table("ods.notes", len(notes))
    return {
        "site_id": key.site_id,
        "assistant": assistant,
        "member": member_block(core, key.member_id, tz),
        "relation": relation,
        "profile": profile,
        "recent_services": [
            {
                "started_at": local_time(r["started_at"], tz),
                "service_minutes": r["minutes"],
                "fee": money(r["fee"]),
                "area_label": AREA_LABELS.get(r["area_code"], r["area_code"]),
            }
            for r in services
        ],
        "tasks": tasks,
        "notes_by_assistant": notes,
        "other_assistants": others,
    }


def build_app5_prompt(
    conn: DictConnection, key: AssistantMemberKey, *, tz: str = DEFAULT_TIMEZONE, refs: References | None = None
) -> dict[str, Any]:
    """App5 (tactics): App4's last good analysis of the pair, the open task and the latest notes."""
    refs = refs if refs is not None else References()
    analysis = cache.latest_valid(conn, key.site_id, "app4_analysis", key.target_id)
    if analysis is None:
        raise NothingToAsk("App4 has no analysis of the pair yet")
    assistant = _assistant(conn, key.site_id, key.assistant_id)
    core = member_core(conn, key.site_id, key.member_id)
    tasks = _pair_tasks(conn, key, tz)
    open_task = next((t for t in tasks if t["status"] == "assigned"), None)
    app4 = {k: v for k, v in analysis.result_json.items() if not k.startswith("_")}
    notes = _pair_notes(conn, key, tz, by_assistant_only=False)[:3]
    _pair_refs(refs, key, core)
    refs.table("ods.tasks", len(tasks))
    refs.table("ods.notes", len(notes))
    refs.source(analysis)
    return {
        "site_id": key.site_id,
        "assistant": assistant,
        "member": member_block(core, key.member_id, tz),
        "profile": profile_block(core, tz),
        "app4_result": app4,
        "app4_generated_at": local_time(analysis.created_at, tz),
        "open_task": open_task,
        "recent_notes": notes,
    }
