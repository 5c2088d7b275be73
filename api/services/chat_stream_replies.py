"""The chat reply as SSE events (``POST /api/xcx/chat/stream``), framed by sse-starlette.

The mini-program's contract (seeds/004): ``event: message`` ``{"token"}`` per piece of text,
then ``event: done`` ``{"messageId", "createdAt"[, "referenceCard"]}``, or ``event: error``
``{"message"[, "code"]}``; one ``data:`` line of JSON each, frames ended by a blank line (``\\n``).
``EventSourceResponse`` adds the keep-alive comment (:func:`keep_alive`) while the model is silent
and watches for the client leaving even then.

A client that leaves cancels this generator where it waits for the model: the LLM layer's
stream is then closed (``stream_bridge``: once the SDK's read in flight returns, so at the
upstream's next chunk; its ledger row becomes ``failed`` / ``Cancelled`` with the text so
far) and what had arrived is saved as the reply, status ``partial``, by a task of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import ServerSentEvent

from api.schemas.chat import ChatStreamRequest, ReferenceCard
from api.services import Pool, chat
from zqyy_assets.core.llm.errors import GuardRefused, LLMError

log = logging.getLogger(__name__)

SEP = "\n"  # the old service's framing, which the mini-program parses


def event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    """One SSE frame; JSON keeps the data on one line."""
    return ServerSentEvent(json.dumps(data, ensure_ascii=False), event=name, sep=SEP)


def keep_alive() -> ServerSentEvent:
    """The comment sent while the model is silent: SSE clients ignore it, idle timers restart."""
    return ServerSentEvent(comment="ping", sep=SEP)


async def reply_events(
    app: Any, pool: Pool, session: dict, body: ChatStreamRequest, biz_params: dict[str, str], *, context_messages: int
) -> AsyncIterator[ServerSentEvent]:
    chat_id, site_id = session["id"], session["site_id"]
    parts: list[str] = []
    bailian_session = session["bailian_session_id"]
    settled = False  # the reply (whole or partial) is saved
    page = chat.PageContext()
    try:
        async with pool.connection() as conn:
            turns = await chat.recent_turns(conn, chat_id, context_messages)
            page = await chat.page_context(conn, site_id, body.source_page, body.page_context, session)
        tokens = 0
        async for delta in app.state.llm.astream_chat(
            chat.build_prompt(turns, page.text),
            site_id=site_id,
            session_id=bailian_session,
            biz_params=biz_params,
            target_id=str(chat_id),
        ):
            bailian_session = delta.session_id or bailian_session
            if delta.done:
                tokens = delta.tokens_in + delta.tokens_out
            elif delta.text:
                parts.append(delta.text)
                yield event("message", {"token": delta.text})
        async with pool.connection() as conn:
            saved = await chat.save_message(
                conn,
                chat_id,
                "assistant",
                "".join(parts),
                tokens_used=tokens,
                bailian_session_id=bailian_session,
                reference_card=page.card,
            )
        settled = True
        done = {"messageId": saved["id"], "createdAt": saved["created_at"].isoformat()}
        if page.card is not None:
            done["referenceCard"] = page.card.model_dump(mode="json", by_alias=True)
        yield event("done", done)
    except Exception as exc:  # the upstream (or the ledger) failed: keep what arrived, say so in-band
        log.warning("chat %s: stream failed after %d chunks: %s", chat_id, len(parts), exc)
        if parts:
            await save_partial(pool, chat_id, "".join(parts), bailian_session, page.card)
        settled = True
        error = {"message": chat.AI_UNAVAILABLE}
        if isinstance(exc, LLMError) and exc.code:
            error["code"] = exc.code
        if isinstance(exc, GuardRefused):
            error["code"] = exc.reason
        yield event("error", error)
    finally:
        if not settled and parts:
            # The client went away mid-stream: this generator is being cancelled, so the partial
            # reply is saved by a task of its own (which the app's shutdown waits for).
            task = asyncio.get_running_loop().create_task(
                save_partial(pool, chat_id, "".join(parts), bailian_session, page.card)
            )
            app.state.background.add(task)
            task.add_done_callback(app.state.background.discard)


async def save_partial(
    pool: Pool, chat_id: int, text: str, bailian_session: str | None, card: ReferenceCard | None
) -> None:
    """What arrived before the stream broke or the client left, as the reply (status ``partial``)."""
    try:
        async with pool.connection() as conn:
            await chat.save_message(
                conn,
                chat_id,
                "assistant",
                text,
                message_status="partial",
                bailian_session_id=bailian_session,
                reference_card=card,
            )
    except Exception as exc:
        log.warning("chat %s: could not save the partial reply: %s", chat_id, exc)
