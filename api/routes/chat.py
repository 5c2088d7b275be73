"""The mini-program chat, compatible with the old `/api/xcx/chat/*` router (seeds/004).

Every endpoint works on the caller's own chats: someone else's chat is a 403, a missing one a
404. Replies come from the Bailian chat app through the LLM layer's guards and ledger.
"""

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sse_starlette import EventSourceResponse

from api.deps import ConnDep, PoolDep, PrincipalDep, SettingsDep, SiteDep
from api.schemas.chat import (
    ChatHistoryResponse,
    ChatMessagesResponse,
    ChatStreamRequest,
    SendMessageRequest,
    SendMessageResponse,
)
from api.schemas.common import AUTH_ERRORS, BAD_BODY, NOT_FOUND, Id
from api.services import chat, chat_stream_replies
from zqyy_assets.core.apps import CHAT_APP

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/xcx/chat",
    tags=["mini-program chat"],
    responses=AUTH_ERRORS,
)

ContextType = Annotated[str, Query(alias="contextType", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
ContextId = Annotated[str, Query(alias="contextId", max_length=64, pattern=r"^[A-Za-z0-9_\-:.]*$")]
Page = Annotated[int, Query(ge=1, le=10_000)]


@router.get("/history", response_model=ChatHistoryResponse)
async def chat_history(
    principal: PrincipalDep,
    site_id: SiteDep,
    conn: ConnDep,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
):
    """The caller's chats at the site, the most recently active first."""
    items, total = await chat.history(conn, site_id, principal.subject, page=page, page_size=page_size)
    return {"items": items, "total": total, "page": page, "page_size": page_size}


@router.get("/messages", response_model=ChatMessagesResponse)
async def messages_by_context(
    principal: PrincipalDep,
    site_id: SiteDep,
    conn: ConnDep,
    context_type: ContextType,
    context_id: ContextId,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
):
    """The chat of a page context (found, or created empty), with its messages oldest first."""
    chat_id = await chat.find_or_create(conn, site_id, principal.subject, context_type, context_id)
    items, total = await chat.messages(conn, chat_id, page=page, page_size=page_size)
    return {"chat_id": chat_id, "items": items, "total": total, "page": page, "page_size": page_size}


@router.get("/{chat_id}/messages", response_model=ChatMessagesResponse, responses=NOT_FOUND)
async def messages_by_chat(
    chat_id: Annotated[Id, Path()],
    principal: PrincipalDep,
    conn: ConnDep,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
):
    """A chat's messages, oldest first."""
    await chat.owned_session(conn, chat_id, site_id_scope=principal.site_ids, owner=principal.subject)
    items, total = await chat.messages(conn, chat_id, page=page, page_size=page_size)
    return {"chat_id": chat_id, "items": items, "total": total, "page": page, "page_size": page_size}


@router.post("/{chat_id}/messages", response_model=SendMessageResponse, responses=BAD_BODY | NOT_FOUND)
async def send_message(
    chat_id: Annotated[Id, Path()],
    body: SendMessageRequest,
    request: Request,
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
):
    """Send a message and wait for the whole reply. If the AI fails, the reply is a notice
    (status `error`, still HTTP 200), as the mini-program expects."""
    async with pool.connection() as conn:
        session = await chat.owned_session(conn, chat_id, site_id_scope=principal.site_ids, owner=principal.subject)
        user_message = await chat.save_message(conn, chat_id, "user", body.content)
        turns = await chat.recent_turns(conn, chat_id, settings.chat_context_messages)
    # No connection is held while the model answers.
    try:
        answer = await request.app.state.llm.acall_app(
            CHAT_APP,
            chat.build_prompt(turns),
            site_id=session["site_id"],
            session_id=session["bailian_session_id"],
            biz_params=principal.biz_params(),
            target_id=str(chat_id),
            trigger_type="chat",
        )
        reply = dict(
            content=str(answer.payload.get("text", "")),
            message_status="complete",
            tokens_used=answer.tokens_total,
            bailian_session_id=answer.session_id,
        )
    except Exception as exc:  # any failure of the model call becomes the notice, never a 500
        log.warning("chat %s: reply failed: %s", chat_id, exc)
        reply = dict(content=chat.AI_UNAVAILABLE, message_status="error")
    async with pool.connection() as conn:
        ai_message = await chat.save_message(conn, chat_id, "assistant", reply.pop("content"), **reply)
    return {"user_message": user_message, "ai_reply": ai_message}


@router.post(
    "/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "SSE: `message` {token}, then `done` {messageId, createdAt, referenceCard when the"
            " reply drew on the page's cached answers} or `error` {message}.",
        },
        **BAD_BODY,
        **NOT_FOUND,
    },
)
async def chat_stream(
    body: ChatStreamRequest, request: Request, principal: PrincipalDep, pool: PoolDep, settings: SettingsDep
):
    """Send a message and stream the reply as Server-Sent Events. Ownership and empty content
    are checked before the stream starts (plain 403 / 422). While the model is silent a comment
    (`: ping`) comes every `CHAT_SSE_PING_S` seconds. If the upstream breaks mid-answer, what
    arrived is saved (status `partial`) and an `error` event ends the stream; if the client
    leaves, the upstream call is stopped and what arrived is saved the same way."""
    async with pool.connection() as conn:
        session = await chat.owned_session(
            conn, body.chat_id, site_id_scope=principal.site_ids, owner=principal.subject
        )
        await chat.save_message(conn, body.chat_id, "user", body.content)
    stream = chat_stream_replies.reply_events(
        request.app, pool, session, body, principal.biz_params(), context_messages=settings.chat_context_messages
    )
    return EventSourceResponse(
        stream,
        headers={"Cache-Control": "no-cache"},
        ping=settings.chat_sse_ping_s,
        sep=chat_stream_replies.SEP,
        ping_message_factory=chat_stream_replies.keep_alive,
    )
