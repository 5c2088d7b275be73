"""The realtime channels in one process: auth matrix, Origin, envelope, since, and the slow client.

Close codes arrive right after the handshake, so FastAPI's TestClient suffices for them;
messages are read with the real client of ``tests/api/realtime_support.py`` (deadlines)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.main import create_app
from api.settings import LoginTokenSettings
from tests.api.conftest import OTHER_SITE, SITE
from tests.api.login_support import SECRET, jwks_server, mint, rsa_key
from tests.api.realtime_support import Ws, api_in_thread, put_cache, wait_until
from zqyy_assets.core import db, outbox
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.settings import RealtimeSettings

ALERTS, EVENTS = f"/ws/ai-alerts/{SITE}", f"/ws/ai-events/{SITE}"


def close_code(client: TestClient, path: str, **kwargs) -> int:
    with client.websocket_connect(path, **kwargs) as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value.code


def test_auth_matrix(client: TestClient, db_url: str, make_token) -> None:
    admin, staff = make_token("admin"), make_token("staff")
    other_admin = make_token("admin", sites=(OTHER_SITE,))
    with db.transaction(db_url) as conn:
        expired = token_store.issue(
            conn, subject="old", role="admin", site_ids=[SITE], expires_at=datetime.now(UTC) - timedelta(minutes=1)
        ).token
    assert close_code(client, EVENTS) == 4401  # no token
    assert close_code(client, EVENTS, headers={"Authorization": f"Bearer {expired}"}) == 4401
    assert close_code(client, f"{EVENTS}?token=not-a-token") == 4401
    assert close_code(client, EVENTS, headers={"Authorization": f"Bearer {other_admin}"}) == 4403  # another site
    assert close_code(client, ALERTS, headers={"Authorization": f"Bearer {staff}"}) == 4403  # staff on alerts
    assert close_code(client, f"/ws/ai-events/{OTHER_SITE}?token={staff}") == 4403

    # Accepted, by each of the three ways of giving the token (the subprotocol answered is "bearer").
    for kwargs in (
        {"headers": {"Authorization": f"Bearer {admin}"}},
        {"subprotocols": ["bearer", admin]},
        {},
    ):
        path = ALERTS if kwargs else f"{ALERTS}?token={admin}"
        with client.websocket_connect(path, **kwargs) as ws:
            wait_until(lambda: client.app.state.realtime.subscriber_count() == 1, what="the subscription")
            if "subprotocols" in kwargs:
                assert ws.accepted_subprotocol == "bearer"
            ws.close()
        wait_until(lambda: client.app.state.realtime.subscriber_count() == 0, what="the unsubscription")
    with client.websocket_connect(EVENTS, headers={"Authorization": f"Bearer {staff}"}) as ws:  # staff on events
        wait_until(lambda: client.app.state.realtime.subscriber_count() == 1, what="the staff subscription")
        ws.close()


def test_origin_must_be_on_the_allowlist_when_one_is_set(api_settings, make_token) -> None:
    admin = make_token("admin")
    settings = api_settings.model_copy(update={"api_cors_origins": "https://admin.example.com, https://m.example.com"})
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {admin}", "Origin": "https://evil.example.com"}
        assert close_code(client, EVENTS, headers=headers) == 4403
        for allowed in ({**headers, "Origin": "https://m.example.com"}, {"Authorization": f"Bearer {admin}"}):
            with client.websocket_connect(EVENTS, headers=allowed) as ws:  # an allowed browser; not a browser
                wait_until(lambda: client.app.state.realtime.subscriber_count() == 1, what="the subscription")
                ws.close()
            wait_until(lambda: client.app.state.realtime.subscriber_count() == 0, what="the unsubscription")


def test_slow_client_is_closed_with_4408(api_settings, db_url: str, make_token) -> None:
    """A subscriber whose queue fills up is closed (4408), not buffered without bound."""
    admin = make_token("admin")
    settings = api_settings.model_copy(update={"realtime": RealtimeSettings(realtime_queue_max=3)})
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect(EVENTS, headers={"Authorization": f"Bearer {admin}"}) as ws:
            wait_until(lambda: client.app.state.realtime.subscriber_count() == 1, what="the subscription")
            put_cache(db_url, SITE, "burst", rows=20)  # 20 messages offered at once to a queue of 3
            received = 0
            with pytest.raises(WebSocketDisconnect) as closed:
                while received <= 20:
                    ws.receive_json()
                    received += 1
            assert closed.value.code == 4408 and received <= 3
            assert not any(s.direct for s in client.app.state.realtime.subscribers())  # no frame writer here
        wait_until(lambda: client.app.state.realtime.subscriber_count() == 0, what="the unsubscription")


def test_envelope_live_then_since_replay(api_settings, db_url: str, make_token) -> None:
    admin = make_token("admin")
    with api_in_thread(api_settings) as (base, app):
        with Ws.open(f"{base}{EVENTS}?since=0", token=admin) as ws:
            [first] = put_cache(db_url, SITE, "100")
            put_cache(db_url, OTHER_SITE, "200")  # another site's: never here
            message = ws.next()
            assert set(message) == {"type", "site_id", "payload", "created_at", "seq"}
            assert (message["type"], message["site_id"], message["seq"]) == ("cache_updated", SITE, 1)
            assert message["payload"] == {
                "cache_type": "app3_clue",
                "target_id": "100",
                "triggered_by": "test",
                "cache_id": first,
            }
            datetime.fromisoformat(message["created_at"])
            # Served as it is in production: past the replay, the hub writes the frames itself.
            wait_until(lambda: [s.direct for s in app.state.realtime.subscribers()] == [True], what="direct frames")
        # Disconnected: what happens now is replayed on reconnection, then live messages follow.
        put_cache(db_url, SITE, "101", rows=2)
        with Ws.open(f"{base}{EVENTS}?since=1", token=admin, via="subprotocol") as ws:
            assert [m["seq"] for m in ws.take(2)] == [2, 3]
            put_cache(db_url, SITE, "102")
            assert ws.next()["seq"] == 4
        # The alerts channel skips other types; its seqs are the site's (gaps are normal).
        with db.transaction(db_url) as conn:
            conn.execute(
                "INSERT INTO biz.ai_alerts (site_id, app_type, error_message) VALUES (%s, 'app3_clue', 'x')", (SITE,)
            )
        with Ws.open(f"{base}{ALERTS}?since=0", token=admin, via="query") as ws:
            alert = ws.next()
            assert (alert["type"], alert["seq"], alert["payload"]["message"]) == ("alert_created", 5, "x")
        assert app.state.realtime.subscriber_count() == 0 or wait_until(
            lambda: app.state.realtime.subscriber_count() == 0, what="the unsubscriptions"
        )


def test_event_status_from_an_api_write_and_the_sensors(api_settings, client, db_url: str, make_token) -> None:
    staff = make_token("staff")
    body = {"event_type": "consumption", "site_id": SITE, "member_id": 7, "occurred_at": "2026-03-02T20:00:00+08:00"}
    with api_in_thread(api_settings) as (base, _), Ws.open(f"{base}{EVENTS}?since=0", token=staff) as ws:
        response = client.post("/api/ai/events", json=body, headers={"Authorization": f"Bearer {staff}"})
        assert response.status_code == 202
        event_id = response.json()["id"]
        for update in ("status = 'running'", "started_at = now()", "status = 'failed', finished_at = now()"):
            with db.transaction(db_url) as conn:  # as the inbox and status sensors do
                conn.execute(f"UPDATE biz.ai_events SET {update} WHERE id = %s", (event_id,))
        statuses = [(m["type"], m["payload"]["event_id"], m["payload"]["status"]) for m in ws.take(3)]
        assert statuses == [("event_status", event_id, s) for s in ("pending", "running", "failed")]


@pytest.mark.parametrize("signed", ["HS256", "RS256"])
def test_login_tokens_on_both_channels(api_settings, signed: str) -> None:
    """The platform's JWTs are accepted as the opaque tokens are: header, subprotocol, ?token=."""
    key = rsa_key("k1")
    with jwks_server(key) as jwks:
        login = LoginTokenSettings(jwt_secret=SECRET) if signed == "HS256" else LoginTokenSettings(jwks_url=jwks.url)
        with TestClient(create_app(api_settings.model_copy(update={"login": login}))) as client:

            def token(**claims) -> str:
                return mint(key if signed == "RS256" else None, **claims)

            admin, staff = token(role="admin"), token()
            for path, accepted in ((ALERTS, admin), (EVENTS, admin), (EVENTS, staff)):
                for kwargs in (
                    {"headers": {"Authorization": f"Bearer {accepted}"}},
                    {"subprotocols": ["bearer", accepted]},
                    {},
                ):
                    url = path if kwargs else f"{path}?token={accepted}"
                    with client.websocket_connect(url, **kwargs) as ws:
                        wait_until(lambda: client.app.state.realtime.subscriber_count() == 1, what="the subscription")
                        ws.close()
                    wait_until(lambda: client.app.state.realtime.subscriber_count() == 0, what="the unsubscription")
            expired = token(role="admin", exp=int(time.time()) - 120)
            for path in (ALERTS, EVENTS):
                assert close_code(client, path, subprotocols=["bearer", expired]) == 4401
                assert close_code(client, f"{path}?token={token(role='admin', status='pending')}") == 4403
                assert close_code(client, path, headers={"Authorization": f"Bearer {token(site_id=OTHER_SITE)}"}) == (
                    4403
                )
            assert close_code(client, f"{ALERTS}?token={staff}") == 4403  # staff on the alerts channel


def test_an_app_stopped_as_soon_as_it_started_stops(api_settings) -> None:
    """Stopping the hub during its first outbox purge once left its housekeeping task running
    (the cancellation came back as a driver error and was survived): the app never stopped."""
    for _ in range(20):
        client = TestClient(create_app(api_settings))
        client.__enter__()
        closer = threading.Thread(target=client.__exit__, args=(None, None, None), daemon=True)
        closer.start()
        closer.join(timeout=30)
        assert not closer.is_alive(), "the app did not stop"


def test_a_subscriber_leaving_at_once_ends_cleanly(client: TestClient, make_token) -> None:
    """A disconnect followed at once by the server's cancellation once landed while the handler
    gathered its tasks; the gather re-raised a bare CancelledError, which escaped the server's
    cancel scope (seen in CI). Hundreds of quick connections make that timing likely."""
    headers = {"Authorization": f"Bearer {make_token('admin')}"}
    hub = client.app.state.realtime
    for _ in range(300):
        with client.websocket_connect(EVENTS, headers=headers) as ws:
            assert ws.accepted_subprotocol is None  # accepted (a refusal raises here)
    # ...and every handler ended cleanly: none left subscribed, none raised on the way out.
    assert hub.subscriber_count() == 0


def test_a_reader_too_slow_for_direct_frames_is_closed_with_4408_and_resumes_with_since(
    api_settings, db_url: str, make_token
) -> None:
    """Frames the hub writes itself are bounded by the connection's unsent bytes, not a queue: a
    client that stops reading is closed (4408) once they pass REALTIME_SEND_BUFFER_MAX_BYTES, gets
    whole frames up to the close, and loses nothing when it reconnects with ``since``."""
    admin = make_token("admin")
    limit = 64 * 1024
    realtime = RealtimeSettings(realtime_send_buffer_max_bytes=limit)
    settings = api_settings.model_copy(update={"realtime": realtime})
    with api_in_thread(settings) as (base, app):
        with connect(f"{base}{EVENTS}", additional_headers={"Authorization": f"Bearer {admin}"}) as conn:
            wait_until(lambda: [s.direct for s in app.state.realtime.subscribers()] == [True], what="direct frames")
            # ~18 MB of messages, past what the kernel buffers on loopback and the limit, while the
            # client reads nothing (its library stops reading the socket after a few frames).
            with db.transaction(db_url) as tx:
                published = [
                    outbox.publish(tx, SITE, outbox.ALERT_CREATED, {"message": "警" * 10_000}) for _ in range(600)
                ]
            wait_until(lambda: app.state.realtime.subscriber_count() == 0, 30, "the slow reader's unsubscription")
            seqs = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    seqs.append(json.loads(conn.recv(timeout=15))["seq"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
        assert 0 < len(seqs) < len(published) and seqs == published[: len(seqs)]  # whole frames, in order
        with Ws.open(f"{base}{EVENTS}?since={seqs[-1]}", token=admin) as ws:
            assert [m["seq"] for m in ws.take(len(published) - len(seqs))] == published[len(seqs) :]
