"""A separate process racing others through the guards: ``python -m tests.defs.llm.race_worker '<json>'``.

The JSON names the settings, the app, how many calls to make and the wall-clock moment to
start at (so racing processes begin together); the outcome of each call is printed as JSON.
"""

from __future__ import annotations

import json
import sys
import time

from zqyy_assets.defs.llm.errors import GuardRefused
from zqyy_assets.defs.llm.service import LLMService
from zqyy_assets.defs.llm.settings import load_settings


def main() -> None:
    job = json.loads(sys.argv[1])
    outcomes = []
    with LLMService(load_settings(**job["settings"])) as service:
        service.budget()  # open the pool before the start line, so both racers start warm
        time.sleep(max(0.0, job["start_at"] - time.time()))
        for _ in range(job["calls"]):
            try:
                answer = service.call_app(job["app"], {"recency_days": 5}, site_id=1)
                outcomes.append({"ok": True, "tokens": answer.tokens_in + answer.tokens_out})
            except GuardRefused as refused:
                outcomes.append({"ok": False, "reason": refused.reason})
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
