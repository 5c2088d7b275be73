"""The mini-program chat (`/api/xcx/chat/*`): camelCase JSON, as the mini-program sends and reads it."""

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from api.schemas.common import CamelModel, Id
from api.schemas.events import check_payload

MAX_CONTENT_CHARS = 4000
EMPTY_CONTENT = "消息内容不能为空"  # shown to staff in the mini-program


def _content(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError(EMPTY_CONTENT)
    if "\x00" in text:
        raise ValueError("消息内容包含非法字符 (NUL)")
    return text


class ChatHistoryItem(CamelModel):
    id: int
    title: str
    context_type: str
    context_id: str
    last_message: str | None
    last_message_at: datetime | None
    message_count: int
    created_at: datetime


class ChatHistoryResponse(CamelModel):
    items: list[ChatHistoryItem]
    total: int
    page: int
    page_size: int


class ReferenceSource(CamelModel):
    """A cached answer a reply drew on."""

    cache_id: int
    cache_type: str = Field(description="The app whose answer it is, e.g. `app2a_finance_area`.")
    target_id: str
    generated_at: datetime
    title: str = Field(description="The app's label, e.g. 财务洞察(区域).")


class ReferenceCard(ReferenceSource):
    """Under a reply that drew on the page's cached answers: the first one (its fields and a line
    of it), and every one used in `sources`."""

    summary: str
    source_page: str
    sources: list[ReferenceSource]


class ChatMessageItem(CamelModel):
    id: int
    role: str
    content: str
    status: str = Field(description="complete | partial (the stream broke; what arrived) | error (a notice)")
    created_at: datetime
    reference_card: ReferenceCard | None = Field(
        None, description="Set on a reply that drew on cached answers (a chat opened from a board page)."
    )


class ChatMessagesResponse(CamelModel):
    chat_id: int
    items: list[ChatMessageItem]
    total: int
    page: int
    page_size: int


class SendMessageRequest(CamelModel):
    content: str = Field(max_length=MAX_CONTENT_CHARS)

    _check = field_validator("content")(_content)


class MessageBrief(CamelModel):
    id: int
    role: str
    content: str
    status: str
    created_at: datetime


class SendMessageResponse(CamelModel):
    user_message: MessageBrief
    ai_reply: MessageBrief


class ChatStreamRequest(CamelModel):
    chat_id: Id
    content: str = Field(max_length=MAX_CONTENT_CHARS)
    source_page: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-/.]*$",
        description="The board page the chat was opened from; its cached answers become context.",
    )
    page_context: dict[str, Any] | None = Field(
        None, description="The page's filters, e.g. timeDimension, area, memberId."
    )

    _check = field_validator("content")(_content)

    @field_validator("page_context")
    @classmethod
    def _page_context(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_payload(value, "pageContext")
