"""The soak's invariants, read from Postgres (the app's and Dagster's), the fake's own count and what
the clients recorded. Each check is one ``Check``: a name, passed or not, and its figures in one line."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from zqyy_assets.core import db
from zqyy_assets.core.answer_audit import invalid_cached_answers
from zqyy_assets.core.apps import APPS
from zqyy_assets.testing.soak.clients import Record

REQUEST_CAP = 4  # at most this many requests for one answer (core/llm/settings.py)
RECOVERY_S = 30.0
HANG_S = 10.0


@dataclass
class Faults:
    pg_down: list[tuple[float, float]] = field(default_factory=list)  # (stopped, started) time.time()
    daemon_kills: list[float] = field(default_factory=list)
    api_kills: list[float] = field(default_factory=list)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class Baseline:
    """Where the soak's own rows begin (the demo setup wrote some before)."""

    event_id: int
    cache_id: int


def baseline(database_url: str) -> Baseline:
    with db.connect(database_url) as conn:
        event = conn.execute("SELECT coalesce(max(id), 0) AS n FROM biz.ai_events").fetchone()
        cache = conn.execute("SELECT coalesce(max(id), 0) AS n FROM biz.ai_cache").fetchone()
    assert event is not None and cache is not None
    return Baseline(event["n"], cache["n"])


def event_figures(database_url: str, base: Baseline) -> Counter:
    with db.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT status, (status = 'failed' AND coalesce(error_message, '') = '') AS no_reason, count(*) AS n
               FROM biz.ai_events WHERE id > %s GROUP BY 1, 2""",
            (base.event_id,),
        ).fetchall()
    counts: Counter = Counter()
    for row in rows:
        counts[row["status"]] += row["n"]
        if row["no_reason"]:
            counts["failed_without_reason"] += row["n"]
    return counts


def check_events(database_url: str, base: Baseline, record: Record) -> tuple[Check, Counter, int]:
    counts = event_figures(database_url, base)
    with db.connect(database_url) as conn:
        present = {r["id"] for r in conn.execute("SELECT id FROM biz.ai_events WHERE id > %s", (base.event_id,))}
    lost = len(set(record.events) - present)
    stuck = counts["pending"] + counts["running"]
    ok = lost == 0 and stuck == 0 and counts["failed_without_reason"] == 0
    detail = (
        f"{sum(v for k, v in counts.items() if k != 'failed_without_reason')} events: completed {counts['completed']}, "
        f"failed {counts['failed']} (without a reason {counts['failed_without_reason']}), skipped as duplicates "
        f"{counts['skipped_duplicate']}; stuck pending/running {stuck}; lost {lost} of {len(record.events)} written"
    )
    return Check("every event ended completed or failed with a reason", ok, detail), counts, lost


def check_run_once(database_url: str, dagster_url: str) -> tuple[Check, int]:
    with db.connect(dagster_url) as conn:
        twice_keys = conn.execute(
            """SELECT t.value, count(*) AS n FROM run_tags t
               WHERE t.key = 'dagster/run_key' AND NOT EXISTS (
                   SELECT 1 FROM run_tags p WHERE p.run_id = t.run_id AND p.key = 'dagster/parent_run_id')
               GROUP BY t.value HAVING count(*) > 1"""
        ).fetchall()
        runs = conn.execute("SELECT count(*) AS n FROM runs").fetchone()
    with db.connect(database_url) as conn:
        twice_answers = conn.execute(
            """SELECT e.id, c.cache_type, c.target_id, count(DISTINCT c.id) AS n
               FROM biz.ai_events e CROSS JOIN LATERAL unnest(e.dagster_run_ids) AS r(run_id)
               JOIN biz.ai_cache c ON c.dagster_run_id = r.run_id
               GROUP BY e.id, c.cache_type, c.target_id, c.input_hash HAVING count(DISTINCT c.id) > 1"""
        ).fetchall()
        over_cap = conn.execute(
            """SELECT dagster_run_id, app_name, target_id, sum(attempts) AS n FROM biz.ai_call_ledger
               WHERE dagster_run_id IS NOT NULL GROUP BY 1, 2, site_id, 3 HAVING sum(attempts) > %s""",
            (REQUEST_CAP,),
        ).fetchall()
    twice = len(twice_keys) + len(twice_answers)
    detail = (
        f"{runs['n'] if runs else 0} Dagster runs; run keys with two runs {len(twice_keys)}; answers written twice "
        f"for one event {len(twice_answers)}; answers over {REQUEST_CAP} requests {len(over_cap)}"
    )
    return Check("no event ran twice", twice == 0 and not over_cap, detail), twice


def check_ledger(database_url: str, upstream: dict, billed: dict[str, int], faults: Faults) -> tuple[Check, str]:
    """Requests: equal (each is counted in its row before it is sent). Tokens: equal, except what no
    process could read: a stream its reader left may have had its next chunk billed in flight
    (at most that request's whole billing, ``billed`` by request id), and the request a SIGKILLed
    API worker was making (its row stays ``running``; at most one request's worth)."""
    with db.connect(database_url) as conn:
        row = conn.execute(
            """SELECT coalesce(sum(attempts), 0) AS requests, coalesce(sum(tokens_in), 0) AS tin,
                      coalesce(sum(tokens_out), 0) AS tout, count(*) AS calls,
                      coalesce(max(tokens_used::float8 / greatest(attempts, 1)), 0) AS biggest
               FROM biz.ai_call_ledger WHERE provider = 'dashscope'"""
        ).fetchone()
        running = conn.execute(
            """SELECT extract(epoch FROM called_at)::float8 AS at, dagster_run_id FROM biz.ai_call_ledger
               WHERE provider = 'dashscope' AND status = 'running'"""
        ).fetchall()
        left = conn.execute(
            """SELECT request_id FROM biz.ai_call_ledger
               WHERE provider = 'dashscope' AND error_code = 'Cancelled' AND request_id IS NOT NULL"""
        ).fetchall()
    assert row is not None
    killed = [r for r in running if r["dagster_run_id"] is None and any(r["at"] <= k for k in faults.api_kills)]
    orphans = len(running) - len(killed)
    missing = (upstream["tokens_in"] - row["tin"]) + (upstream["tokens_out"] - row["tout"])
    bound = sum(billed.get(r["request_id"], 0) for r in left) + len(killed) * (row["biggest"] + 1)
    requests_same, tokens_same = row["requests"] == upstream["requests"], missing == 0
    tokens = (
        "equal" if tokens_same else f"{missing:+,} billed upstream, unread by {len(left)} stream(s) their reader left"
    )
    if len(killed) and not tokens_same:
        tokens += f" and {len(killed)} call(s) of the killed API worker"
    detail = (
        f"ledger {row['calls']:,} calls, {row['requests']:,} requests, tokens {row['tin']:,}+{row['tout']:,}; upstream "
        f"received {upstream['requests']:,} requests, billed {upstream['tokens_in']:,}+{upstream['tokens_out']:,}; "
        f"tokens {tokens} (at most {bound:,}); calls left running {len(running)} (by the API kill {len(killed)}); "
        f"upstream steps {dict(sorted(upstream['steps'].items()))}"
    )
    ok = requests_same and (tokens_same or 0 < missing <= bound) and orphans == 0
    verdict = (
        "yes" if requests_same and tokens_same else f"requests {'yes' if requests_same else 'NO'}, tokens {tokens}"
    )
    return Check("the ledger equals the upstream: requests and tokens", ok, detail), verdict


def check_budget(database_url: str, daily_limit: int, api_processes: int) -> Check:
    with db.connect(database_url) as conn:
        row = conn.execute(
            """SELECT coalesce(sum(tokens_used), 0) AS used, coalesce(max(tokens_used), 0) AS biggest,
                      count(DISTINCT dagster_run_id) AS runs,
                      count(*) FILTER (WHERE status = 'budget_exceeded') AS refused
               FROM biz.ai_call_ledger WHERE provider = 'dashscope'"""
        ).fetchone()
    assert row is not None
    processes = row["runs"] + api_processes
    allowed = daily_limit + row["biggest"] * processes
    detail = (
        f"used {row['used']:,} of {daily_limit:,} tokens (refused {row['refused']} calls); allowed overrun one call "
        f"({row['biggest']:,}) per process ({processes}): up to {allowed:,}"
    )
    return Check("the budget was never exceeded by more than one call per process", row["used"] <= allowed, detail)


def check_cache(database_url: str) -> Check:
    with db.connect(database_url) as conn:
        checked, invalid = invalid_cached_answers(conn, tuple(APPS))
    first = f"; first: {invalid[0]}" if invalid else ""
    return Check(
        "every cached answer validates against its schema",
        not invalid,
        f"{checked} rows, invalid {len(invalid)}{first}",
    )


def _in_outage(at: float, seconds: float, faults: Faults) -> bool:
    return any(stopped - 1 <= at + seconds and at <= started + RECOVERY_S for stopped, started in faults.pg_down)


def check_api(record: Record, faults: Faults) -> tuple[Check, int]:
    answers = record.answers
    five_hundreds = [a for a in answers if a.status >= 500 and a.status != 503]
    no_retry_after = [a for a in answers if a.status == 503 and a.retry_after is None]
    # A chat stream lasts as long as the reply: only plain requests can hang.
    plain = [a for a in answers if a.what != "chat.stream"]
    during = [a for a in plain if _in_outage(a.at, a.seconds, faults)]
    hung = [a for a in during if a.seconds > HANG_S]
    outside_503 = [a for a in answers if a.status == 503 and not _in_outage(a.at, a.seconds, faults)]
    recovered = []
    for _, started in faults.pg_down:
        failing = [a.at + a.seconds for a in plain if a.at >= started and a.status == 503]
        recovered.append(max(failing, default=started) - started)
    resets = [a for a in answers if a.status == 0]
    unexplained = [a for a in resets if not any(a.at - 1 <= k <= a.at + a.seconds + 1 for k in faults.api_kills)]
    worst = max(recovered, default=0.0)
    ok = not five_hundreds and not no_retry_after and not hung and worst < RECOVERY_S and not unexplained
    detail = (
        f"{len(answers):,} answers; 5xx other than 503: {len(five_hundreds)}"
        f"{' ' + str(Counter(a.what for a in five_hundreds).most_common(3)) if five_hundreds else ''}; "
        f"503 during the outage {sum(a.status == 503 for a in during)} (without Retry-After {len(no_retry_after)}), "
        f"503 outside it {len(outside_503)}; slowest answer in the outage "
        f"{max((a.seconds for a in during), default=0):.1f} s (over {HANG_S:g} s: {len(hung)}); last 503 "
        f"{worst:.1f} s after Postgres was back; no answer {len(resets)} "
        f"(all but {len(unexplained)} cut by the API kill)"
    )
    return Check("the API never answered 500; 503 + Retry-After in the outage; recovered by itself", ok, detail), len(
        five_hundreds
    )


def check_chats(database_url: str, record: Record, faults: Faults) -> Check:
    ends = Counter(c.end for c in record.chats)
    killed = [c for c in record.chats if c.end == "cut" and any(c.began <= k <= c.ended + 1 for k in faults.api_kills)]
    unexplained_cuts = ends["cut"] - len(killed)
    broken = [c for c in record.chats if c.end in ("error", "abandoned") and c.text]
    with db.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT chat_id, content, status FROM biz.chat_messages
               WHERE role = 'assistant' AND status IN ('complete', 'partial') ORDER BY id"""
        ).fetchall()
    pool: dict[int, list[tuple[str, str]]] = {}
    for row in rows:
        pool.setdefault(row["chat_id"], []).append((row["status"], row["content"]))
    # The replies read to the end claim theirs first; a broken stream's saved reply is then a partial
    # one, or the whole reply when the server had finished it before it saw the client leave.
    for chat in record.chats:
        read_whole = ("complete", chat.text)
        if chat.end == "done" and read_whole in pool.get(chat.chat_id, []):
            pool[chat.chat_id].remove(read_whole)
    unsaved = excused = near_kill = whole = 0
    for chat in broken:
        found = next((r for r in pool.get(chat.chat_id, []) if r[1].startswith(chat.text)), None)
        if found is not None:
            pool[chat.chat_id].remove(found)
            whole += found[0] == "complete"
        elif _in_outage(chat.began, chat.ended - chat.began, faults):
            excused += 1  # Postgres was down when it broke: there was nowhere to save it
        else:
            unsaved += 1
            near_kill += any(chat.ended <= k <= chat.ended + 5 for k in faults.api_kills)
    detail = (
        f"{len(record.chats)} streams: {dict(sorted(ends.items()))}; cut by the API kill {len(killed)}, cut otherwise "
        f"{unexplained_cuts}; broken with text {len(broken)}: saved {len(broken) - unsaved - excused} (of which "
        f"whole, finished before the client left, {whole}), not saved {unsaved} (of which ended within 5 s before "
        f"the API kill {near_kill}), broken while Postgres was down {excused}"
    )
    return Check(
        "every chat stream ended done or error; broken ones saved their partial reply",
        unexplained_cuts == 0 and unsaved == 0,
        detail,
    )


def check_realtime(database_url: str, base: Baseline, record: Record) -> Check:
    with db.connect(database_url) as conn:
        committed = {
            r["id"]
            for r in conn.execute("SELECT id FROM biz.ai_cache WHERE id > %s AND status = 'valid'", (base.cache_id,))
        }
    missing = {name: len(committed - got) for name, got in record.received.items()}
    detail = (
        f"{len(committed)} answers committed; {len(record.received)} subscribers, reconnects {record.reconnects}; "
        f"missing per subscriber {missing}"
    )
    return Check(
        "realtime subscribers got every cache_updated after reconnecting with since", not any(missing.values()), detail
    )


def missing_pushes(database_url: str, base: Baseline, record: Record) -> int:
    with db.connect(database_url) as conn:
        committed = {
            r["id"]
            for r in conn.execute("SELECT id FROM biz.ai_cache WHERE id > %s AND status = 'valid'", (base.cache_id,))
        }
    return sum(len(committed - got) for got in record.received.values())


def check_logs(files: list[Path], secrets: dict[str, str]) -> Check:
    leaks = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaks += [f"{name} in {path.name}" for name, secret in secrets.items() if secret and secret in text]
    detail = (
        f"{len(files)} log files, {len(secrets)} secrets (the API key, bearer tokens): found {len(leaks)} {leaks[:5]}"
    )
    return Check("no secret in any log line", not leaks, detail)
