"""The offline provider: a deterministic analyst that computes each app's answer from the
figures in its prompt, with no key and no network. Its answers are labelled
``"_provider": "offline"`` (and ``AppAnswer.provider == "offline"``), cost zero tokens, and are
valid for the app's schema in ``zqyy_assets.core.answer_schemas``. The fake DashScope server uses
it too, so its answers are realistic and schema-valid.

The same prompt always gives the same answer (no clock, no randomness). The prompt is the JSON
the prompt builders (``zqyy_assets.core.prompts``) produce, a ``dict`` or its JSON text, read
as :mod:`.reading` says. Missing figures are skipped, never invented; with nothing usable the
answer says the data is too thin. Each app's analyst, and the prompt shape it reads:
:mod:`.finance` (app2/app2a), :mod:`.member` (app3/7/8), :mod:`.notes` (app6),
:mod:`.relationship` (app4/5), :mod:`.chat` (app1); :mod:`.analyst` dispatches by app.
"""

from zqyy_assets.core.llm.offline.analyst import OFFLINE_MODEL, analyse
from zqyy_assets.core.llm.offline.chat import chat_answer, chat_reply
from zqyy_assets.core.llm.offline.member import consolidate, customer, member_clues
from zqyy_assets.core.llm.offline.notes import note_analysis
from zqyy_assets.core.llm.offline.relationship import relationship, tactics

__all__ = [
    "OFFLINE_MODEL",
    "analyse",
    "chat_answer",
    "chat_reply",
    "consolidate",
    "customer",
    "member_clues",
    "note_analysis",
    "relationship",
    "tactics",
]
