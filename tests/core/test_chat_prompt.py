"""The chat prompt's text format, written and read back by the one module that owns it."""

import json

from zqyy_assets.core.prompts.chat import PAGE_TEXT_MAX_CHARS, chat_prompt, page_block, parse_chat_prompt


def test_a_prompt_reads_back_as_its_question_page_and_answers() -> None:
    answers = {"app2_finance:this_month__all": {"insights": [{"title": "增长", "content": "多行\n\n文本"}]}}
    turns = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！"},
        {"role": "user", "content": "本月营业额怎么样？"},
    ]
    text = chat_prompt(turns, page_block("board-finance", answers))
    assert text.startswith("[页面上下文: board-finance]\n") and text.endswith("[当前问题]\n本月营业额怎么样？")
    parsed = parse_chat_prompt(text)
    assert (parsed.question, parsed.source_page, parsed.answers) == ("本月营业额怎么样？", "board-finance", answers)
    # A lone question, and plain text, are all question.
    assert parse_chat_prompt(chat_prompt(turns[-1:])).question == "本月营业额怎么样？"
    assert parse_chat_prompt("随便问问").answers == {}


def test_the_page_block_keeps_whole_answers_within_its_bound() -> None:
    small = {"summary": "短"}
    big = {"summary": "长" * PAGE_TEXT_MAX_CHARS}
    block = page_block("member-detail", {"app7_customer:7": small, "app8_consolidation:7": big})
    assert block is not None and len(block) < PAGE_TEXT_MAX_CHARS
    assert parse_chat_prompt(f"{block}\n\n问题").answers == {"app7_customer:7": small}
    # Even the first answer too long: cut as text, read back as no answers, the question intact.
    cut = page_block("member-detail", {"app8_consolidation:7": big})
    assert cut is not None and cut.endswith("…") and len(cut) < PAGE_TEXT_MAX_CHARS + 40
    parsed = parse_chat_prompt(f"{cut}\n\n问题")
    assert (parsed.answers, parsed.question) == ({}, "问题")
    assert page_block("board-finance", {}) is None
    json.loads(block.split("\n", 1)[1])  # the kept block is JSON
