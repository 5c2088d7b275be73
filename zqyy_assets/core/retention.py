"""App8's side effect: the member's AI retention clues replaced by its latest consolidation.

Rows of one source (``ai_consumption`` or ``ai_note``) are deleted and re-inserted in one
transaction, so a reader sees the old set or the new one, never half; manual clues and the
other AI source are untouched. Replacing with the same answer twice leaves the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zqyy_assets.core.db import DictConnection

AI_SOURCES = ("ai_consumption", "ai_note")
DEFAULT_CATEGORY = "客户基础"


def source_for_trigger(trigger: str | None) -> str:
    """A note event's chain writes ``ai_note``; every other trigger (consumption, manual...) ``ai_consumption``."""
    return "ai_note" if trigger == "note_created" else "ai_consumption"


@dataclass(frozen=True)
class ReplaceResult:
    source: str
    deleted: int
    inserted: int


def clue_rows(clues: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(category, summary, detail, recorded_by_name) as the clients show them: "📅 偏好周末下午"."""
    rows = []
    for clue in clues:
        emoji = str(clue.get("emoji") or "").strip()
        summary = str(clue.get("summary") or "").strip()
        providers = clue.get("providers") or []
        if isinstance(providers, str):
            providers = [providers]
        rows.append(
            (
                str(clue.get("category") or DEFAULT_CATEGORY),
                f"{emoji} {summary}" if emoji else summary,
                str(clue.get("detail") or ""),
                "、".join(str(p) for p in providers),
            )
        )
    return rows


def replace_ai_clues(
    conn: DictConnection,
    *,
    site_id: int,
    member_id: int,
    source: str,
    clues: list[dict[str, Any]],
    dagster_run_id: str | None,
) -> ReplaceResult:
    """Replace the member's clues of ``source`` with ``clues`` in one transaction.

    An answer with no clues leaves the existing rows as they are (as the old dispatcher did): an
    empty consolidation is more likely a thin answer than proof that every clue is gone.
    """
    if source not in AI_SOURCES:
        raise ValueError(f"App8 writes only AI sources {AI_SOURCES}, not {source!r}")
    rows = clue_rows(clues)
    if not rows:
        return ReplaceResult(source, 0, 0)
    with conn.transaction():
        # Serialise concurrent replaces of the same member and source (two chains at once).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"retention:{site_id}:{member_id}:{source}",))
        deleted = conn.execute(
            "DELETE FROM biz.member_retention_clue WHERE site_id = %s AND member_id = %s AND source = %s",
            (site_id, member_id, source),
        ).rowcount
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO biz.member_retention_clue
                       (site_id, member_id, category, summary, detail, source, recorded_by_name, dagster_run_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                [
                    (site_id, member_id, cat, summary, detail, source, by, dagster_run_id)
                    for cat, summary, detail, by in rows
                ],
            )
    return ReplaceResult(source, deleted, len(rows))
