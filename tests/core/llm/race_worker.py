"""A separate process racing others through the guards: ``python -m tests.core.llm.race_worker '<json>'``.

The JSON names the settings, the app and how many calls to make. The worker prints ``ready``
once warm, waits for a line on stdin (the parent releases every racer at once), then prints the
outcome of each call as JSON.
"""

from __future__ import annotations

import json
import sys

from zqyy_assets.core.llm.errors import GuardRefused
from zqyy_assets.core.llm.service import LLMService
from zqyy_assets.core.llm.settings import load_settings


def main() -> None:
    job = json.loads(sys.argv[1])
    outcomes = []
    with LLMService(load_settings(**job["settings"])) as service:
        service.budget()  # open the pool before the start line, so every racer starts warm
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(job["calls"]):
            try:
                answer = service.call_app(job["app"], {"recency_days": 5}, site_id=1)
                outcomes.append({"ok": True, "tokens": answer.tokens_in + answer.tokens_out})
            except GuardRefused as refused:
                outcomes.append({"ok": False, "reason": refused.reason})
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
