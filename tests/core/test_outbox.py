"""The realtime outbox: written in the writer's transaction, seq per site in commit order."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.api.realtime_support import put_cache, wait_until
from zqyy_assets.core import db, outbox


def messages(url: str, site: int = 1) -> list[outbox.Message]:
    with db.connect(url) as conn:
        return outbox.read_after(conn, site, 0)


def test_cache_insert_pushes_cache_updated_in_its_transaction(db_url: str) -> None:
    [cache_id] = put_cache(db_url, 1, "100")
    with db.transaction(db_url) as conn:  # an invalidated row is no news
        conn.execute(
            """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                         triggered_by, provider, status)
               VALUES (1, 'app3_clue', '101', 'h', 'v1', '{}', 'test', 'offline', 'invalidated')"""
        )
    with pytest.raises(RuntimeError), db.transaction(db_url) as conn:  # rolled back: no row, no seq used
        put = conn.execute(
            """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                         triggered_by, provider)
               VALUES (1, 'app3_clue', '102', 'h', 'v1', '{}', 't', 'o')"""
        )
        assert put.rowcount == 1
        raise RuntimeError("the writer fails after the insert")
    [cache_id2] = put_cache(db_url, 1, "103")

    [first, second] = messages(db_url)
    assert (first.seq, second.seq) == (1, 2)  # the rolled-back insert took no seq
    assert first.type == "cache_updated" and first.site_id == 1
    assert first.payload == {
        "cache_type": "app3_clue",
        "target_id": "100",
        "triggered_by": "test",
        "cache_id": cache_id,
    }
    assert second.payload["cache_id"] == cache_id2
    assert set(first.envelope()) == {"type", "site_id", "payload", "created_at", "seq"}


def test_alert_insert_pushes_alert_created_unless_it_has_no_site(db_url: str) -> None:
    with db.transaction(db_url) as conn:
        alert_id = conn.execute(
            """INSERT INTO biz.ai_alerts (site_id, app_type, alert_type, error_message, dagster_run_id)
               VALUES (2, 'app3_clue', 'failed', 'boom', 'run-1') RETURNING id"""
        ).fetchone()["id"]
        conn.execute("INSERT INTO biz.ai_alerts (site_id, app_type, error_message) VALUES (NULL, 'x', 'no site')")
    [message] = messages(db_url, 2)
    assert message.type == "alert_created"
    assert message.payload == {
        "app_type": "app3_clue",
        "alert_type": "failed",
        "message": "boom",
        "log_id": None,
        "alert_id": alert_id,
        "dagster_run_id": "run-1",
        "event_id": None,
    }


def test_event_phases_are_pushed_once_each(db_url: str) -> None:
    with db.transaction(db_url) as conn:
        event_id = conn.execute(
            """INSERT INTO biz.ai_events (event_type, site_id, member_id, biz_date)
               VALUES ('consumption', 1, 100, '2026-03-01') RETURNING id"""
        ).fetchone()["id"]
    for update in (
        "status = 'running', app_chain = 'app3→app8→app7'",
        "dagster_run_ids = '{r1}'",  # no phase change: nothing pushed
        "started_at = now()",  # its first run started: still running, nothing pushed
        "status = 'completed', finished_at = now()",
    ):
        with db.transaction(db_url) as conn:
            conn.execute(f"UPDATE biz.ai_events SET {update} WHERE id = %s", (event_id,))
    phases = [(m.payload["previous_status"], m.payload["status"]) for m in messages(db_url)]
    assert phases == [(None, "pending"), ("pending", "running"), ("running", "completed")]
    assert {m.payload["event_id"] for m in messages(db_url)} == {event_id}


def test_seq_follows_commit_order_between_concurrent_writers(db_url: str) -> None:
    """The second writer of a site waits for the first one's commit before it takes its seq, so a
    reader that has seen seq N has seen every seq below N (``since`` never skips a late commit)."""
    first = db.connect(db_url)
    first.execute(
        """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                     triggered_by, provider)
           VALUES (1, 'app3_clue', 'first', 'h', 'v1', '{}', 't', 'o')"""
    )  # open transaction: holds site 1's counter
    done: list[int] = []
    second = threading.Thread(target=lambda: done.extend(put_cache(db_url, 1, "second")))
    second.start()
    with db.connect(db_url, autocommit=True) as watcher:
        wait_until(
            lambda: watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone(),
            what="the second writer to wait for the site's counter",
        )
        other_site = put_cache(db_url, 2, "elsewhere")  # another site does not wait
        assert other_site and not done
    first.commit()
    first.close()
    second.join(10)
    by_target = {m.payload["target_id"]: m.seq for m in messages(db_url)}
    assert by_target == {"first": 1, "second": 2}
    assert [m.seq for m in messages(db_url, 2)] == [1]


def test_publish_and_purge(db_url: str) -> None:
    with db.transaction(db_url) as conn:
        assert outbox.publish(conn, 3, "event_status", {"event_id": 1, "status": "pending"}) == 1
        assert outbox.publish(conn, 3, "cache_updated", {"cache_id": 9}) == 2
        with pytest.raises(ValueError):
            outbox.publish(conn, 3, "nope", {})
        conn.execute("UPDATE biz.realtime_outbox SET created_at = now() - interval '25 hours' WHERE seq = 1")
    with db.transaction(db_url) as conn:
        assert outbox.purge(conn, timedelta(hours=24)) == 1
        assert outbox.last_seq(conn, 3) == 2 and outbox.last_seq(conn, 4) == 0
    assert [m.seq for m in messages(db_url, 3)] == [2]
