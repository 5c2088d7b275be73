"""One prewarm shard as its own process (a run worker): ``python bench/_prewarm_shard.py '<json>'``.

The JSON names the database, the LLM resource's fields, the shard's sites and the concurrency.
Prints ``ready`` once warm, waits for a line on stdin (all shards start together), runs the
shard's prewarm (all 72 partitions for its sites) on the Postgres Dagster instance and prints a
JSON line with its outcome.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _db import postgres_dagster_instance  # noqa: E402

from zqyy_assets.defs.ai.jobs import materialize_app2_prewarm  # noqa: E402
from zqyy_assets.defs.ai.resources import LLMResource  # noqa: E402


def main() -> None:
    job = json.loads(sys.argv[1])
    url, llm = job["database_url"], LLMResource(**job["llm"])
    with postgres_dagster_instance(url) as instance:
        llm.service.budget()  # open the pool before the start line
        print("ready", flush=True)
        sys.stdin.readline()
        t0 = time.perf_counter()
        result = materialize_app2_prewarm(
            instance,
            database_url=url,
            llm=llm,
            trigger="bench",
            concurrency=job["concurrency"],
            sites=job["sites"],
        )
        wall = time.perf_counter() - t0
    print(json.dumps({"success": result.success, "wall": wall, "sites": len(job["sites"])}), flush=True)


if __name__ == "__main__":
    main()
