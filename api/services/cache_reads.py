"""Reads of biz.ai_cache and biz.member_retention_clue, always for one site."""

from __future__ import annotations

import asyncio

from api.services import AsyncConn, Pool, one_row

_COLUMNS = """id, site_id, cache_type AS app_type, target_id, status, result_json AS result, score::float8 AS score,
              prompt_version, provider, model, triggered_by, tokens_in, tokens_out, latency_ms, dagster_run_id,
              created_at, grounding"""


async def latest_valid(conn: AsyncConn, site_id: int, app_type: str, target_id: str) -> dict | None:
    """The newest valid answer (history is kept; invalidated and ungrounded rows are skipped)."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM biz.ai_cache
            WHERE site_id = %s AND cache_type = %s AND target_id = %s AND status = 'valid'
            ORDER BY created_at DESC, id DESC LIMIT 1""",
        (site_id, app_type, target_id),
    )
    return await cur.fetchone()


class LatestAnswers:
    """The newest valid answer by (site, app, target) as its JSON body, built by Postgres in
    CacheEntry's shape (the same row as ``latest_valid``; its tests compare the two).

    The API's hottest read. Reads that arrive together share one round trip: a request joins
    the batch being gathered, which is sent on the next turn of the event loop, or as soon as
    one of the ``max_in_flight`` batches already sent comes back; one statement answers every
    key of a batch, each key on its own (site included) through the latest-answer index. Every
    answer is read from Postgres after its request arrived; nothing is kept between batches.
    Measured (bench/bench_api.py): the per-query driver and pool work was about half of the
    read's CPU in the API process, and with 64 requests in flight a batch carries ~10-30."""

    _SQL = """
        SELECT k.i, a.body
        FROM unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY AS k(site_id, cache_type, target_id, i)
        CROSS JOIN LATERAL (
            SELECT json_build_object(
                'id', id, 'site_id', site_id, 'app_type', cache_type, 'target_id', target_id, 'status', status,
                'result', result_json, 'score', score::float8, 'prompt_version', prompt_version,
                'provider', provider, 'model', model, 'triggered_by', triggered_by, 'tokens_in', tokens_in,
                'tokens_out', tokens_out, 'latency_ms', latency_ms, 'dagster_run_id', dagster_run_id,
                'created_at', created_at, 'grounding', grounding)::text AS body
            FROM biz.ai_cache c
            WHERE c.site_id = k.site_id AND c.cache_type = k.cache_type AND c.target_id = k.target_id
              AND c.status = 'valid'
            ORDER BY c.created_at DESC, c.id DESC LIMIT 1
        ) a
    """

    def __init__(self, pool: Pool, *, max_in_flight: int = 2, max_batch: int = 256) -> None:
        self._pool = pool
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._gathering: list[tuple[int, str, str, asyncio.Future]] = []
        self._scheduled = False
        self._in_flight: set[asyncio.Task] = set()

    async def get(self, site_id: int, app_type: str, target_id: str) -> str | None:
        future = asyncio.get_running_loop().create_future()
        self._gathering.append((site_id, app_type, target_id, future))
        if not self._scheduled and len(self._in_flight) < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send)
        return await future

    def _send(self) -> None:
        self._scheduled = False
        while self._gathering and len(self._in_flight) < self._max_in_flight:
            batch, self._gathering = self._gathering[: self._max_batch], self._gathering[self._max_batch :]
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        if self._gathering and not self._scheduled:
            self._send()

    async def _read(self, batch: list[tuple[int, str, str, asyncio.Future]]) -> None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    self._SQL, ([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch])
                )
                found = {row["i"]: row["body"] for row in await cur.fetchall()}
        except asyncio.CancelledError:
            for *_, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # every request of the batch fails as its own read would have
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (*_, future) in enumerate(batch, 1):
            if not future.done():
                future.set_result(found.get(i))


async def history(
    conn: AsyncConn, site_id: int, app_type: str, target_id: str, *, limit: int, offset: int
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
    return [], int((await one_row(cur))["n"])


async def member_clues(conn: AsyncConn, site_id: int, member_id: int) -> list[dict]:
    cur = await conn.execute(
        """SELECT id, category, summary, detail, source, recorded_by_name, recorded_by_assistant_id, created_at
           FROM biz.member_retention_clue WHERE site_id = %s AND member_id = %s
           ORDER BY created_at DESC, id DESC""",
        (site_id, member_id),
    )
    return await cur.fetchall()
