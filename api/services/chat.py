"""Chat sessions and messages (biz.chat_sessions / biz.chat_messages) and the prompt built from them.

A session belongs to one subject (the token's holder) at one site. The prompt sent to the
Bailian chat app is the last N messages (20 by default, error notices left out) with the
newest user message as the question, prefixed by the page's cached answers when the chat was
opened from a board page. Bailian's own session id is stored and sent back on the next turn.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import HTTPException, status
from psycopg.types.json import Jsonb

from api.schemas.chat import ReferenceCard, ReferenceSource
from api.schemas.common import (
    AREAS,
    TIME_DIMENSIONS,
)
from api.services import AsyncConn, cache_reads, one_row
from zqyy_assets.core.apps import get_app
from zqyy_assets.core.partition_keys import app2_app_name, app2_target_id
from zqyy_assets.core.prompts.chat import chat_prompt, page_block

NOT_FOUND = "对话不存在"
NOT_YOURS = "无权访问该对话"
AI_UNAVAILABLE = "AI 服务暂时不可用，请稍后再试"
CARD_SUMMARY_MAX_CHARS = 80
_SESSION_COLUMNS = """id, site_id, owner, title, context_type, context_id, bailian_session_id, last_message,
                      last_message_at, message_count, created_at"""
_MESSAGE_COLUMNS = "id, role, content, status, created_at, reference_card"


async def owned_session(conn: AsyncConn, chat_id: int, *, site_id_scope: tuple[int, ...], owner: str) -> dict:
    """The session if this subject owns it: 404 when it does not exist, 403 when it is not theirs."""
    cur = await conn.execute(f"SELECT {_SESSION_COLUMNS} FROM biz.chat_sessions WHERE id = %s", (chat_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    if row["owner"] != owner or row["site_id"] not in site_id_scope:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=NOT_YOURS)
    return row


async def history(conn: AsyncConn, site_id: int, owner: str, *, page: int, page_size: int) -> tuple[list[dict], int]:
    count = "SELECT count(*) AS n FROM biz.chat_sessions WHERE site_id = %s AND owner = %s"
    total = (await one_row(await conn.execute(count, (site_id, owner))))["n"]
    cur = await conn.execute(
        f"""SELECT {_SESSION_COLUMNS} FROM biz.chat_sessions WHERE site_id = %s AND owner = %s
            ORDER BY last_message_at DESC NULLS LAST, id DESC LIMIT %s OFFSET %s""",
        (site_id, owner, page_size, (page - 1) * page_size),
    )
    return await cur.fetchall(), total


async def find_or_create(conn: AsyncConn, site_id: int, owner: str, context_type: str, context_id: str) -> int:
    """The subject's newest session for this page context, or a new one."""
    cur = await conn.execute(
        """SELECT id FROM biz.chat_sessions
           WHERE site_id = %s AND owner = %s AND context_type = %s AND context_id = %s
           ORDER BY id DESC LIMIT 1""",
        (site_id, owner, context_type, context_id),
    )
    row = await cur.fetchone()
    if row is not None:
        return row["id"]
    cur = await conn.execute(
        """INSERT INTO biz.chat_sessions (site_id, owner, context_type, context_id)
           VALUES (%s, %s, %s, %s) RETURNING id""",
        (site_id, owner, context_type, context_id),
    )
    return int((await one_row(cur))["id"])


async def messages(conn: AsyncConn, chat_id: int, *, page: int, page_size: int) -> tuple[list[dict], int]:
    count = "SELECT count(*) AS n FROM biz.chat_messages WHERE chat_id = %s"
    total = (await one_row(await conn.execute(count, (chat_id,))))["n"]
    cur = await conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM biz.chat_messages WHERE chat_id = %s ORDER BY id LIMIT %s OFFSET %s",
        (chat_id, page_size, (page - 1) * page_size),
    )
    return await cur.fetchall(), total


async def save_message(
    conn: AsyncConn,
    chat_id: int,
    role: str,
    content: str,
    *,
    message_status: str = "complete",
    tokens_used: int | None = None,
    bailian_session_id: str | None = None,
    reference_card: ReferenceCard | None = None,
) -> dict:
    """Store one message and update the session's summary (and Bailian session id) with it."""
    card = None if reference_card is None else Jsonb(reference_card.model_dump(mode="json", by_alias=True))
    async with conn.transaction():
        cur = await conn.execute(
            """INSERT INTO biz.chat_messages (chat_id, role, content, status, tokens_used, reference_card)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, role, content, status, created_at""",
            (chat_id, role, content, message_status, tokens_used, card),
        )
        row = await one_row(cur)
        await conn.execute(
            """UPDATE biz.chat_sessions
               SET last_message = left(%s, 200), last_message_at = %s, message_count = message_count + 1,
                   title = CASE WHEN title = '' AND %s = 'user' THEN left(%s, 40) ELSE title END,
                   bailian_session_id = COALESCE(%s, bailian_session_id)
               WHERE id = %s""",
            (content, row["created_at"], role, content, bailian_session_id, chat_id),
        )
    return row


async def recent_turns(conn: AsyncConn, chat_id: int, limit: int) -> list[dict]:
    """The last ``limit`` messages, oldest first; error notices are not part of the dialogue."""
    cur = await conn.execute(
        """SELECT role, content FROM (
               SELECT id, role, content FROM biz.chat_messages
               WHERE chat_id = %s AND status <> 'error' ORDER BY id DESC LIMIT %s
           ) t ORDER BY id""",
        (chat_id, limit),
    )
    return await cur.fetchall()


def build_prompt(turns: list[dict], page_text: str | None = None) -> str:
    """As the old service: a lone question goes as is; otherwise the dialogue, then the question
    (the format's home is ``zqyy_assets.core.prompts.chat``, which the offline analyst reads back)."""
    return chat_prompt(turns, page_text)


_DIGITS = re.compile(r"^[1-9][0-9]{0,18}$")


def _pick(context: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = context.get(name)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return None


class PageContext:
    """What the page the chat was opened from adds: the prompt's text and the reply's reference card."""

    def __init__(self, text: str | None = None, card: ReferenceCard | None = None) -> None:
        self.text = text
        self.card = card


async def page_context(
    conn: AsyncConn,
    site_id: int,
    source_page: str | None,
    page_context: dict[str, Any] | None,
    session: dict,
) -> PageContext:
    """The cached answers describing the page the chat was opened from, as labelled JSON, and the
    reference card naming them (the mini-program shows it under the reply).

    Read from the page's filters: a finance board (timeDimension + area) gives App2's insights;
    a member (memberId, or the session's numeric contextId) gives App7's analysis and App8's
    clues; an assistant with a member adds App4 and App5. Nothing cached adds nothing.
    """
    if not source_page:
        return PageContext()
    ctx = page_context or {}
    wanted: list[tuple[str, str]] = []
    time_dimension = _pick(ctx, "timeDimension", "time_dimension")
    area = _pick(ctx, "area") or "all"
    if time_dimension in TIME_DIMENSIONS and area in AREAS:
        wanted.append((app2_app_name(area), app2_target_id(time_dimension, area)))
    member = _pick(ctx, "memberId", "member_id", "contextId")
    if member is None and _DIGITS.match(session["context_id"] or ""):
        member = session["context_id"]
    if member is not None and _DIGITS.match(member):
        wanted += [("app7_customer", member), ("app8_consolidation", member)]
        assistant = _pick(ctx, "assistantId", "assistant_id")
        if assistant is not None and _DIGITS.match(assistant):
            wanted += [("app4_analysis", f"{assistant}_{member}"), ("app5_tactics", f"{assistant}_{member}")]
    found = {}
    rows = []
    for app_type, target_id in wanted:
        row = await cache_reads.latest_valid(conn, site_id, app_type, target_id)
        if row is not None:
            found[f"{app_type}:{target_id}"] = row["result"]
            rows.append(row)
    if not found:
        return PageContext()
    return PageContext(page_block(source_page, found), reference_card(source_page, rows))


def reference_card(source_page: str, rows: list[dict]) -> ReferenceCard:
    """The card of a reply that drew on cached answers: the first one named, every one listed."""
    sources = [
        ReferenceSource(
            cache_id=row["id"],
            cache_type=row["app_type"],
            target_id=row["target_id"],
            generated_at=row["created_at"],
            title=get_app(row["app_type"]).title,
        )
        for row in rows
    ]
    first = sources[0]
    return ReferenceCard(
        **first.model_dump(),
        summary=_summary(rows[0]["result"]),
        source_page=source_page,
        sources=sources,
    )


def _summary(result: Any) -> str:
    """A line of the answer: its summary, else its first insight's title or first clue's summary."""
    text = ""
    if isinstance(result, dict):
        candidates = [result.get("summary"), result.get("opening_line")]
        for key, field in (("insights", "title"), ("clues", "summary")):
            items = result.get(key)
            if isinstance(items, list) and items and isinstance(items[0], dict):
                candidates.append(items[0].get(field))
        text = next((c.strip() for c in candidates if isinstance(c, str) and c.strip()), "")
    return text if len(text) <= CARD_SUMMARY_MAX_CHARS else text[: CARD_SUMMARY_MAX_CHARS - 1] + "…"
