"""A re-ask: what was wrong with the model's last answer, told back to it (as Instructor does).

When an answer does not parse as JSON (``client.parse_answer``) or does not fit its app's
pydantic model (``answering``), the next request for the same answer does not repeat the
prompt unchanged: it carries a ``Correction``, the previous answer and every problem found in
it as ``field.path: message`` (all of pydantic's errors, up to ``MAX_PROBLEMS``), and asks for
the corrected JSON only.

The type is provider-neutral; each provider decides how a correction travels:

- a chat-completions provider sends it as turns: ``[system, user(prompt),
  assistant(previous_answer), user(follow_up())]``;
- DashScope's Application API (``client.dashscope_request``) sends ``follow_up()`` in the
  session of the invalid answer when the service returned one, else ``standalone(prompt)``.

``follow_up()`` starts with ``REASK_MARK``, so the ledger's ``request_prompt`` of a re-ask
(always ``standalone(prompt)``, however the provider carried it) says it was one.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

REASK_MARK = "【更正请求】"
MAX_PROBLEMS = 20  # problems listed; the rest are counted
MAX_PREVIOUS_CHARS = 6000  # of the previous answer, quoted in a standalone re-ask
MAX_MESSAGE_CHARS = 300  # of one problem's message


@dataclass(frozen=True)
class Correction:
    """The previous answer (its text as the model wrote it) and what was wrong with it."""

    previous_answer: str
    problems: tuple[str, ...]
    omitted: int = 0  # problems beyond ``MAX_PROBLEMS``, not listed

    @classmethod
    def from_validation_error(cls, previous_answer: str, error: ValidationError) -> Correction:
        """Every error pydantic found, as ``field.path: message`` (``answer`` for the whole answer)."""
        problems = []
        for item in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in item.get("loc", ())) or "answer"
            problems.append(f"{where}: {_one_line(item.get('msg', 'invalid'))}")
        return cls.of(previous_answer, problems)

    @classmethod
    def not_json(cls, previous_answer: str, detail: str) -> Correction:
        """The answer could not be read as a JSON object at all."""
        return cls.of(previous_answer, [f"answer: 不是合法的 JSON 对象（{_one_line(detail)}）"])

    @classmethod
    def of(cls, previous_answer: str, problems: list[str]) -> Correction:
        if not problems:
            raise ValueError("a correction names at least one problem")
        return cls(previous_answer, tuple(problems[:MAX_PROBLEMS]), max(len(problems) - MAX_PROBLEMS, 0))

    @property
    def reason(self) -> str:
        """One line for the ledger's ``error_message`` of the rejected answer."""
        more = f"; +{self.omitted} more" if self.omitted else ""
        return "; ".join(self.problems) + more

    def follow_up(self) -> str:
        """The next user turn, in Chinese: what was wrong, field by field, and "only corrected JSON"."""
        lines = [f"{REASK_MARK}你上一次的回答没有通过校验，问题如下（字段路径: 说明）："]
        lines += [f"- {problem}" for problem in self.problems]
        if self.omitted:
            lines.append(f"- 另有 {self.omitted} 处问题未列出")
        lines.append(
            "请按原来的要求和 JSON 结构重新作答，改正以上每一处问题；"
            "只返回更正后的完整 JSON，不要加任何解释、前后缀或 Markdown 代码块。"
        )
        return "\n".join(lines)

    def standalone(self, prompt: str) -> str:
        """One self-contained prompt: the original prompt, the previous answer quoted, the follow-up."""
        previous = self.previous_answer
        if len(previous) > MAX_PREVIOUS_CHARS:
            previous = previous[:MAX_PREVIOUS_CHARS] + f"…（已截断，共 {len(self.previous_answer)} 字符）"
        return f"{prompt}\n\n你上一次的回答是：\n{previous}\n\n{self.follow_up()}"


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"
