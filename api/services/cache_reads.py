"""Reads of biz.ai_cache and biz.member_retention_clue, always for one site."""

from __future__ import annotations

import psycopg

_COLUMNS = """id, site_id, cache_type AS app_type, target_id, status, result_json AS result, score::float8 AS score,
              prompt_version, provider, model, triggered_by, tokens_in, tokens_out, latency_ms, dagster_run_id, created_at"""


async def latest_valid(conn: psycopg.AsyncConnection, site_id: int, app_type: str, target_id: str) -> dict | None:
    """The newest valid answer (history is kept; invalidated rows are skipped)."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM biz.ai_cache
            WHERE site_id = %s AND cache_type = %s AND target_id = %s AND status = 'valid'
            ORDER BY created_at DESC, id DESC LIMIT 1""",
        (site_id, app_type, target_id),
    )
    return await cur.fetchone()


async def latest_valid_json(conn: psycopg.AsyncConnection, site_id: int, app_type: str, target_id: str) -> str | None:
    """The same row as ``latest_valid``, as the JSON body itself, built by Postgres.

    The hottest read of the API: the stored jsonb goes to the client without being parsed,
    validated and serialized again in Python (about a third of the request's CPU)."""
    cur = await conn.execute(
        f"""SELECT json_build_object(
                'id', id, 'site_id', site_id, 'app_type', cache_type, 'target_id', target_id, 'status', status,
                'result', result_json, 'score', score::float8, 'prompt_version', prompt_version,
                'provider', provider, 'model', model, 'triggered_by', triggered_by, 'tokens_in', tokens_in,
                'tokens_out', tokens_out, 'latency_ms', latency_ms, 'dagster_run_id', dagster_run_id,
                'created_at', created_at)::text AS body
            FROM biz.ai_cache
            WHERE site_id = %s AND cache_type = %s AND target_id = %s AND status = 'valid'
            ORDER BY created_at DESC, id DESC LIMIT 1""",
        (site_id, app_type, target_id),
    )
    row = await cur.fetchone()
    return row["body"] if row else None


async def history(
    conn: psycopg.AsyncConnection, site_id: int, app_type: str, target_id: str, *, limit: int, offset: int
) -> tuple[list[dict], int]:
    """Every answer for the target, valid or not, newest first; and how many there are."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS}, count(*) OVER () AS total FROM biz.ai_cache
            WHERE site_id = %s AND cache_type = %s AND target_id = %s
            ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s""",
        (site_id, app_type, target_id, limit, offset),
    )
    rows = await cur.fetchall()
    if rows:
        return rows, rows[0]["total"]
    # Past the last page the window count is gone: count separately.
    cur = await conn.execute(
        "SELECT count(*) AS n FROM biz.ai_cache WHERE site_id = %s AND cache_type = %s AND target_id = %s",
        (site_id, app_type, target_id),
    )
    return [], (await cur.fetchone())["n"]


async def member_clues(conn: psycopg.AsyncConnection, site_id: int, member_id: int) -> list[dict]:
    cur = await conn.execute(
        """SELECT id, category, summary, detail, source, recorded_by_name, recorded_by_assistant_id, created_at
           FROM biz.member_retention_clue WHERE site_id = %s AND member_id = %s
           ORDER BY created_at DESC, id DESC""",
        (site_id, member_id),
    )
    return await cur.fetchall()
