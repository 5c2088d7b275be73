from tests.defs.ai.venue import cached_answer
from zqyy_assets.core import cache, db


def test_input_hash_is_canonical_and_versioned() -> None:
    prompt = {"b": [1, 2.5, "会员"], "a": {"y": None, "x": True}}
    reordered = {"a": {"x": True, "y": None}, "b": [1, 2.5, "会员"]}
    version = cache.app_version(prompt_version="app3-p1", system_prompt_version="2026-11-22.1", provider="dashscope")
    assert version == "dashscope:app3-p1+sys.2026-11-22.1"
    h = cache.input_hash("app3_clue", version, prompt)
    assert h == cache.input_hash("app3_clue", version, reordered) and len(h) == 64
    assert cache.canonical_json(prompt) == '{"a":{"x":true,"y":null},"b":[1,2.5,"会员"]}'
    # any change of app, version or prompt is a different input
    assert h != cache.input_hash("app7_customer", version, prompt)
    assert h != cache.input_hash("app3_clue", version.replace("p1", "p2"), prompt)
    assert h != cache.input_hash("app3_clue", version.replace("dashscope", "offline"), prompt)
    assert h != cache.input_hash("app3_clue", version, {**prompt, "b": [1, 2.5, "会员", 0]})


def _row(conn, target: str, answer: dict, *, site_id: int = 1, app: str = "app3_clue") -> cache.CachedAnswer:
    return cached_answer(
        conn,
        app,
        target,
        answer,
        site_id=site_id,
        input_hash=f"h-{answer}",
        tokens_in=1,
        tokens_out=2,
        latency_ms=3,
        dagster_run_id="r",
    )


def test_reads_take_the_newest_valid_row(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        assert cache.latest_valid(conn, 1, "app3_clue", "100") is None
        _row(conn, "100", {"n": 1})
        second = _row(conn, "100", {"n": 2})
        third = _row(conn, "100", {"n": 3})
        _row(conn, "100", {"n": 9}, site_id=2)  # another site's row is never read
        _row(conn, "101", {"n": 4})
        assert cache.latest_valid(conn, 1, "app3_clue", "100").result_json == {"n": 3}
        conn.execute("UPDATE biz.ai_cache SET status = 'invalidated' WHERE id = %s", (third.id,))
        latest = cache.latest_valid(conn, 1, "app3_clue", "100")
        assert (latest.id, latest.result_json, latest.tokens_out) == (second.id, {"n": 2}, 2)
        by_target = cache.latest_valid_for_site(conn, 1, ["app3_clue"])
        assert {k: v.result_json for k, v in by_target.items()} == {
            ("app3_clue", "100"): {"n": 2},
            ("app3_clue", "101"): {"n": 4},
        }
        history = conn.execute("SELECT count(*) AS n FROM biz.ai_cache WHERE target_id = '100'").fetchone()["n"]
        assert history == 4  # history is kept
