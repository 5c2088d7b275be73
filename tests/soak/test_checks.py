"""The soak's chat check on a real database: a broken stream counts as saved when its reply is in
the chat, partial or (finished before the server saw the client leave) whole, never twice."""

from __future__ import annotations

from zqyy_assets.core import db
from zqyy_assets.testing.soak.checks import Faults, check_chats
from zqyy_assets.testing.soak.clients import ChatOutcome, Record

REPLY = "最近三位常客需要回访：张先生、李女士、王先生。"


def _chat(db_url: str, *replies: tuple[str, str]) -> int:
    with db.transaction(db_url) as conn:
        chat_id = conn.execute(
            "INSERT INTO biz.chat_sessions (site_id, owner) VALUES (1, 'staff') RETURNING id"
        ).fetchone()["id"]
        for status, content in replies:
            conn.execute(
                "INSERT INTO biz.chat_messages (chat_id, role, content, status) VALUES (%s, 'assistant', %s, %s)",
                (chat_id, content, status),
            )
    return chat_id


def _stream(chat_id: int, end: str, text: str) -> ChatOutcome:
    return ChatOutcome(chat_id, 100.0, 101.0, end, text)


def test_an_abandoned_stream_whose_whole_reply_was_saved_counts_as_saved(db_url: str) -> None:
    chat_id = _chat(db_url, ("complete", REPLY), ("partial", REPLY[:4]))
    record = Record(chats=[_stream(chat_id, "abandoned", REPLY[:2]), _stream(chat_id, "error", REPLY[:4])])
    check = check_chats(db_url, record, Faults())
    assert check.ok, check.detail
    assert "saved 2 (of which whole, finished before the client left, 1)" in check.detail


def test_a_reply_read_to_the_end_is_not_also_taken_for_a_broken_one(db_url: str) -> None:
    # One whole reply, read to the end by one stream; another stream broke and nothing of it was saved.
    chat_id = _chat(db_url, ("complete", REPLY))
    record = Record(chats=[_stream(chat_id, "done", REPLY), _stream(chat_id, "abandoned", REPLY[:2])])
    check = check_chats(db_url, record, Faults())
    assert not check.ok
    assert "not saved 1" in check.detail
