"""The soak's clients, each a thread that keeps going through every fault and records what it saw.

- ``traffic``: live settlements, notes and tasks at the given rate, through the live ingestion path
  (``tools/live_traffic.add_one``); a write refused while Postgres is away is tried again later;
- ``admin_events``: forced events through ``POST /api/admin/ai/trigger-event``;
- ``reads``: cached reads (the fast path), finance insights and the admin dashboard;
- ``chats``: chat streams, one in four abandoned after its first piece;
- ``subscriber``: a realtime subscriber that reconnects with ``since`` whenever it is cut off.

Every HTTP answer is one ``Answer`` (time, what, status, seconds, Retry-After); the checks read them.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import requests
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from zqyy_assets.core import db
from zqyy_assets.tools import live_traffic

TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when the request was sent
    what: str
    status: int  # 0: no HTTP answer (connection refused or reset, a time-out)
    seconds: float
    retry_after: str | None = None
    error: str = ""


@dataclass
class ChatOutcome:
    chat_id: int
    began: float
    ended: float
    end: str  # done | error | abandoned | cut (the connection ended with neither) | refused (no stream)
    text: str = ""


@dataclass
class Record:
    """What every client saw; appended to from many threads (list.append is atomic)."""

    answers: list[Answer] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # inbox ids the traffic and the admin wrote
    traffic_refused: int = 0
    chats: list[ChatOutcome] = field(default_factory=list)
    received: dict[str, set[int]] = field(default_factory=dict)  # subscriber -> cache ids (cache_updated)
    reconnects: int = 0


class Clients:
    def __init__(self, api_url: str, database_url: str, site_id: int, admin: str, staff: str, seed: int) -> None:
        self.api_url, self.database_url, self.site_id = api_url, database_url, site_id
        self.admin, self.staff = admin, staff
        self.record = Record()
        self.stopping = threading.Event()  # the load ends (traffic, reads, chats, admin events)
        # The subscribers listen on through the drain, until everything has stopped: what commits
        # while the runs drain must reach them too.
        self.unsubscribing = threading.Event()
        self.rnd = random.Random(seed)
        self.threads: list[threading.Thread] = []
        with db.connect(database_url) as conn:
            self.members = [
                r["member_id"]
                for r in conn.execute("SELECT member_id FROM ods.members WHERE site_id = %s", (site_id,)).fetchall()
            ]

    # ---------------------------------------------------------------------------- plumbing

    def start(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"soak-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        self.unsubscribing.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def pause(self, seconds: float) -> bool:
        """Wait between requests (the pace of the load, not a wait for a condition); False once stopping."""
        return not self.stopping.wait(seconds)

    def call(
        self, session: requests.Session, what: str, method: str, path: str, token: str, **kw: object
    ) -> tuple[Answer, str]:
        """One request, recorded; its answer and body ("" when none came)."""
        began, mono = time.time(), time.monotonic()
        try:
            response = session.request(
                method, f"{self.api_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S, **kw
            )
            answer = Answer(
                began, what, response.status_code, time.monotonic() - mono, response.headers.get("Retry-After")
            )
            answer_body = response.text
        except requests.RequestException as exc:
            answer, answer_body = Answer(began, what, 0, time.monotonic() - mono, None, type(exc).__name__), ""
        self.record.answers.append(answer)
        return answer, answer_body

    # ----------------------------------------------------------------------------- traffic

    def traffic(self, rate_per_minute: float, minutes: float) -> None:
        interval, total = 60.0 / rate_per_minute, round(rate_per_minute * minutes)
        started, conn, sites = time.monotonic(), None, None
        for n in range(total):
            if not self.pause(max(0.0, started + n * interval - time.monotonic())):
                return
            for _ in range(3):
                try:
                    if conn is None or conn.closed:
                        conn = db.connect(self.database_url, autocommit=True)
                        sites = live_traffic.load_catalog(conn)
                    _, text = live_traffic.add_one(conn, self.rnd, sites or [], datetime.now(UTC))
                    event = re.search(r"-> event (\d+)", text)
                    if event:
                        self.record.events.append(int(event.group(1)))
                    break
                except (psycopg.OperationalError, psycopg.errors.UniqueViolation):
                    self.record.traffic_refused += 1  # written again in a moment: a refused write is no event
                    if conn is not None:
                        conn.close()
                    conn = None
                    if not self.pause(1.0):
                        return
        if conn is not None:
            conn.close()

    def admin_events(self, every_s: float) -> None:
        session = requests.Session()
        while self.pause(every_s):
            body = {"event_type": "consumption", "site_id": self.site_id, "member_id": self.rnd.choice(self.members)}
            answer, answer_body = self.call(
                session, "admin.trigger_event", "POST", "/api/admin/ai/trigger-event", self.admin, json=body
            )
            if answer.status == 202:
                self.record.events.append(json.loads(answer_body)["trigger_job_id"])

    # ------------------------------------------------------------------------------- reads

    def reads(self, per_second: float) -> None:
        session = requests.Session()
        while self.pause(1.0 / per_second):
            roll = self.rnd.random()
            if roll < 0.7:
                member = self.rnd.choice(self.members)
                self.call(session, "read.cache", "GET", f"/api/ai/cache/app3_clue/{member}", self.staff)
            elif roll < 0.9:
                path = "/api/ai/finance/insights?time_dimension=this_month&area=all"
                self.call(session, "read.finance", "GET", path, self.staff)
            else:
                self.call(session, "admin.dashboard", "GET", "/api/admin/ai/dashboard", self.admin)

    # -------------------------------------------------------------------------------- chat

    def chats(self, every_s: float) -> None:
        session = requests.Session()
        n = 0
        while self.pause(every_s):
            n += 1
            path = f"/api/xcx/chat/messages?contextType=soak&contextId={n % 5}"
            opened, opened_body = self.call(session, "chat.open", "GET", path, self.staff)
            if opened.status != 200:
                continue
            chat_id = json.loads(opened_body)["chatId"]
            self._one_stream(session, chat_id, abandon=self.rnd.random() < 0.25)

    def _one_stream(self, session: requests.Session, chat_id: int, abandon: bool) -> None:
        began, mono = time.time(), time.monotonic()
        outcome = ChatOutcome(chat_id, began, began, "cut")
        body = {"chatId": chat_id, "content": "最近哪些会员需要回访？"}
        headers = {"Authorization": f"Bearer {self.staff}", "Accept": "text/event-stream"}
        status = 0
        try:
            with session.post(
                f"{self.api_url}/api/xcx/chat/stream", json=body, headers=headers, stream=True, timeout=TIMEOUT_S
            ) as response:
                status = response.status_code
                if status != 200:
                    outcome.end = "refused"
                else:
                    event = None
                    for line in response.iter_lines(decode_unicode=True):
                        if line.startswith("event:"):
                            event = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and event == "message":
                            outcome.text += json.loads(line.split(":", 1)[1])["token"]
                            if abandon:
                                outcome.end = "abandoned"
                                break
                        elif line.startswith("data:") and event in ("done", "error"):
                            outcome.end = event
                            break
        except requests.RequestException as exc:
            outcome.end = "cut" if status == 200 else "refused"
            self.record.answers.append(
                Answer(began, "chat.stream", 0, time.monotonic() - mono, None, type(exc).__name__)
            )
        else:
            self.record.answers.append(Answer(began, "chat.stream", status, time.monotonic() - mono))
        outcome.ended = time.time()
        self.record.chats.append(outcome)

    # ---------------------------------------------------------------------------- realtime

    def subscriber(self, name: str, since: int) -> None:
        """``cache_updated`` ids of the site, reconnecting with the last seq seen whenever cut off."""
        received = self.record.received.setdefault(name, set())
        url = f"{self.api_url.replace('http', 'ws', 1)}/ws/ai-events/{self.site_id}"
        first = True
        while not self.unsubscribing.is_set():
            if not first:
                self.record.reconnects += 1
            first = False
            try:
                with connect(
                    f"{url}?since={since}",
                    additional_headers={"Authorization": f"Bearer {self.staff}"},
                    open_timeout=10,
                ) as ws:
                    while not self.unsubscribing.is_set():
                        try:
                            raw = ws.recv(timeout=1)
                        except TimeoutError:
                            continue
                        message = json.loads(raw)
                        since = max(since, int(message["seq"]))
                        if message["type"] == "cache_updated":
                            received.add(int(message["payload"]["cache_id"]))
            except (OSError, WebSocketException, TimeoutError):
                self.unsubscribing.wait(0.5)  # the API or a worker is away: reconnect shortly
