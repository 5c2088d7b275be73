"""Batched latest-answer reads (api.services.cache_reads.LatestAnswers): each request gets its own key's answer."""

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.services.cache_reads import LatestAnswers
from tests.api.conftest import OTHER_SITE, SITE, put_cache
from zqyy_assets.core import db


class CountingPool:
    """The real pool, counting checkouts (one per round trip of the reader)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool, self.checkouts = pool, 0

    @asynccontextmanager
    async def connection(self):
        self.checkouts += 1
        async with self.pool.connection() as conn:
            yield conn


def _run(db_url: str, body, **reader_args):
    async def main():
        async with AsyncConnectionPool(
            db_url, min_size=1, max_size=2, open=False, kwargs={"autocommit": True, "row_factory": dict_row}
        ) as pool:
            counting = CountingPool(pool)
            return await body(LatestAnswers(counting, **reader_args), counting)

    return asyncio.run(main())


def _expected(db_url: str, keys) -> list[int | None]:
    """The newest valid row's id per key, one plain query each."""
    with db.connect(db_url) as conn:
        return [
            (row or {}).get("id")
            for row in (
                conn.execute(
                    """SELECT id FROM biz.ai_cache WHERE site_id = %s AND cache_type = %s AND target_id = %s
                       AND status = 'valid' ORDER BY created_at DESC, id DESC LIMIT 1""",
                    key,
                ).fetchone()
                for key in keys
            )
        ]


@pytest.mark.parametrize("max_batch", [256, 3])
def test_concurrent_reads_share_round_trips_and_each_gets_its_own_answer(db_url: str, max_batch: int) -> None:
    for target in ("1", "2", "3"):
        put_cache(db_url, site=SITE, app="app3_clue", target=target, result={"site": SITE, "target": target})
        put_cache(
            db_url, site=OTHER_SITE, app="app3_clue", target=target, result={"site": OTHER_SITE, "target": target}
        )
    put_cache(db_url, site=SITE, app="app3_clue", target="2", result={"newer": True}, created_at="2099-01-01T00:00+00")
    put_cache(
        db_url,
        site=SITE,
        app="app3_clue",
        target="3",
        result={"gone": True},
        status="invalidated",
        created_at="2099-01-01T00:00+00",
    )
    put_cache(db_url, site=SITE, app="app6_note", target="1", result={"app": "note"})
    keys = [
        (site, app, target)
        for site in (SITE, OTHER_SITE, 3)
        for app in ("app3_clue", "app6_note")
        for target in ("1", "2", "3", "4")
    ] * 2  # every key twice, in one burst

    async def burst(reader: LatestAnswers, pool: CountingPool):
        return await asyncio.gather(*(reader.get(*key) for key in keys)), pool.checkouts

    answers, checkouts = _run(db_url, burst, max_in_flight=1, max_batch=max_batch)
    bodies = [json.loads(a) if a is not None else None for a in answers]
    assert [b and b["id"] for b in bodies] == _expected(db_url, keys)
    for key, body in zip(keys, bodies, strict=True):
        if body is not None:
            assert (body["site_id"], body["app_type"], body["target_id"], body["status"]) == (*key, "valid")
    assert sum(b is not None for b in bodies) == 2 * 7
    # One burst, one round trip (or one per max_batch keys).
    assert checkouts == -(-len(keys) // max_batch)


def test_a_failed_read_fails_its_batch_and_the_next_one_reads_again(db_url: str) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="1", result={"ok": True})

    async def body(reader: LatestAnswers, pool: CountingPool):
        with db.connect(db_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE biz.ai_cache RENAME TO ai_cache_gone")
        failed = await asyncio.gather(*(reader.get(SITE, "app3_clue", "1") for _ in range(5)), return_exceptions=True)
        with db.connect(db_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE biz.ai_cache_gone RENAME TO ai_cache")
        return failed, await reader.get(SITE, "app3_clue", "1")

    failed, after = _run(db_url, body)
    assert all(isinstance(f, Exception) and "ai_cache" in str(f) for f in failed), failed
    assert json.loads(after)["result"] == {"ok": True}


def test_a_cancelled_request_leaves_the_others_of_its_batch_alone(db_url: str) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="1", result={"ok": True})

    async def body(reader: LatestAnswers, pool: CountingPool):
        tasks = [asyncio.create_task(reader.get(SITE, "app3_clue", "1")) for _ in range(6)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return done, await reader.get(SITE, "app3_clue", "1")

    done, after = _run(db_url, body, max_in_flight=1)
    assert isinstance(done[2], asyncio.CancelledError)
    assert all(json.loads(d)["result"] == {"ok": True} for i, d in enumerate(done) if i != 2)
    assert after is not None
