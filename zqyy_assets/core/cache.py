"""biz.ai_cache: validated answers with their history, and the input-hash memoization.

Every answer is a new row (history is kept); readers take the newest ``valid`` row per
(site, cache_type, target_id). A row is written only after its answer validated against the
app's schema, so a failed or invalid call never leaves a row behind. Each row carries its
grounded-numbers verdict (``grounding``, ``core/grounding``); an answer whose check blocks and
fails is stored as ``ungrounded``: in the history, never read as the latest nor as a memo hit.

Memoization: the input hash is sha256 over the app name, the app version (prompt builder
version, system prompt version, provider and model) and the canonical JSON of the prompt. When the
newest valid row carries the same hash, the answer is reused and no call is made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.vocabulary import VALID, CacheStatus

# The columns readers need; the table is defined in migration 0004.
_COLUMNS = (
    "id, site_id, cache_type, target_id, input_hash, prompt_version, result_json, score, status, "
    "triggered_by, provider, model, tokens_in, tokens_out, latency_ms, dagster_run_id, created_at, grounding"
)


@dataclass(frozen=True)
class CachedAnswer:
    id: int
    site_id: int
    cache_type: str
    target_id: str
    input_hash: str
    prompt_version: str
    result_json: dict[str, Any]
    score: float | None
    status: str
    triggered_by: str
    provider: str
    model: str | None
    tokens_in: int
    tokens_out: int
    latency_ms: int | None
    dagster_run_id: str | None
    created_at: datetime
    grounding: dict[str, Any] | None = None  # the grounded-numbers verdict (migration 0018)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CachedAnswer:
        score = row["score"]
        return cls(**{**row, "score": float(score) if score is not None else None})


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, UTF-8 kept (so Chinese hashes as itself)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def app_version(*, prompt_version: str, system_prompt_version: str, provider: str, model: str | None = None) -> str:
    """What besides the prompt decides the answer: our builder, the app's system prompt, the
    provider and, where the route names one, the model (``openai/qwen-plus:...``).

    The provider is part of it so that answers of the offline analyst are never served as if a
    model had given them once a key is configured; the model so that changing an app's model
    asks again. A DashScope route names no model (the Bailian app chooses it): its version is
    what it always was.
    """
    route = f"{provider}/{model}" if model else provider
    return f"{route}:{prompt_version}+sys.{system_prompt_version}"


def input_hash(app_name: str, version: str, prompt: Any) -> str:
    payload = canonical_json({"app": app_name, "app_version": version, "prompt": prompt})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def latest_valid(conn: DictConnection, site_id: int, cache_type: str, target_id: str) -> CachedAnswer | None:
    row = conn.execute(
        f"""SELECT {_COLUMNS} FROM biz.ai_cache
            WHERE site_id = %s AND cache_type = %s AND target_id = %s AND status = 'valid'
            ORDER BY created_at DESC, id DESC LIMIT 1""",
        (site_id, cache_type, target_id),
    ).fetchone()
    return CachedAnswer.from_row(row) if row else None


def latest_valid_for_site(
    conn: DictConnection, site_id: int, cache_types: Iterable[str]
) -> dict[tuple[str, str], CachedAnswer]:
    """The newest valid row of every target of the given apps at one site (one query for a prewarm)."""
    rows = conn.execute(
        f"""SELECT DISTINCT ON (cache_type, target_id) {_COLUMNS} FROM biz.ai_cache
            WHERE site_id = %s AND cache_type = ANY(%s) AND status = 'valid'
            ORDER BY cache_type, target_id, created_at DESC, id DESC""",
        (site_id, list(cache_types)),
    ).fetchall()
    return {(r["cache_type"], r["target_id"]): CachedAnswer.from_row(r) for r in rows}


def insert_answer(
    conn: DictConnection,
    *,
    site_id: int,
    cache_type: str,
    target_id: str,
    input_hash: str,
    prompt_version: str,
    result_json: dict[str, Any],
    score: float | None,
    triggered_by: str,
    provider: str,
    model: str | None,
    tokens_in: int,
    tokens_out: int,
    latency_ms: int | None,
    dagster_run_id: str | None,
    grounding: dict[str, Any] | None = None,
    status: CacheStatus = VALID,
) -> CachedAnswer:
    row = conn.execute(
        f"""INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                      score, triggered_by, provider, model, tokens_in, tokens_out, latency_ms,
                                      dagster_run_id, grounding, status)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING {_COLUMNS}""",
        (
            site_id,
            cache_type,
            target_id,
            input_hash,
            prompt_version,
            Jsonb(result_json),
            score,
            triggered_by,
            provider,
            model or None,
            tokens_in,
            tokens_out,
            latency_ms,
            dagster_run_id,
            Jsonb(grounding) if grounding is not None else None,
            status,
        ),
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return CachedAnswer.from_row(row)
