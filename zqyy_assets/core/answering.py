"""Asking an app for one target: memoization, the call, validation, the cache row.

Used by every AI asset (``iter_answers``). One ``Ask`` is one (site, app, target, prompt). The steps:

1. the input hash of (app, app version, prompt); when the newest valid cache row carries the
   same hash and the run is not forced, that row is the answer (a hit, no call);
2. otherwise the app is called through ``LLMResource``; the answer is validated against the
   app's pydantic model and an invalid one is asked again (it counts as a transient failure),
   up to ``VALIDATION_ATTEMPTS`` calls;
3. the validated answer is inserted at once (autocommit), so an answer survives whatever
   happens to the other targets of the same run, and nothing is written for a failed call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import statistics
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import psycopg
from pydantic import ValidationError

from zqyy_assets.core import cache, db
from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.apps import prompt_version as system_prompt_version
from zqyy_assets.core.llm.errors import TransientLLMError

# Calls per answer when the model keeps answering outside the schema; each one is a full call
# (with the LLM layer's own retries for transport errors and invalid JSON).
VALIDATION_ATTEMPTS = 3

Status = Literal["hit", "answered", "skipped", "failed"]


class InvalidAnswerError(TransientLLMError):
    """The app answered JSON that does not fit its schema, every time it was asked."""


@dataclass(frozen=True)
class Ask:
    site_id: int
    app_name: str
    target_id: str
    prompt: dict[str, Any]
    prompt_version: str  # the builder's version


@dataclass(frozen=True)
class RunInfo:
    """What every cache row and ledger row of one run shares."""

    provider: str
    trigger: str
    force: bool
    dagster_run_id: str | None


@dataclass
class Outcome:
    site_id: int
    app_name: str
    target_id: str
    status: Status
    answer: cache.CachedAnswer | None = None
    calls: int = 0
    invalid_answers: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: list[int] = field(default_factory=list)
    reason: str | None = None  # why skipped or failed
    error: BaseException | None = None


def app_version_for(ask: Ask, provider: str) -> str:
    return cache.app_version(
        prompt_version=ask.prompt_version,
        system_prompt_version=system_prompt_version(ask.app_name),
        provider=provider,
    )


@dataclass(frozen=True)
class Prepared:
    ask: Ask
    version: str
    hash: str
    prompt_text: str


def prepare(ask: Ask, provider: str) -> Prepared:
    version = app_version_for(ask, provider)
    return Prepared(ask, version, cache.input_hash(ask.app_name, version, ask.prompt), cache.canonical_json(ask.prompt))


def memo_hit(prepared: Prepared, latest: cache.CachedAnswer | None, run: RunInfo) -> Outcome | None:
    """The cached answer when the newest valid row has this input's hash and the run is not forced."""
    if run.force or latest is None or latest.input_hash != prepared.hash:
        return None
    ask = prepared.ask
    return Outcome(ask.site_id, ask.app_name, ask.target_id, "hit", answer=latest)


def _score(app_name: str, payload: dict[str, Any]) -> float | None:
    return float(payload["score"]) if app_name == "app6_note" and "score" in payload else None


def _store(
    conn: psycopg.Connection, prepared: Prepared, answer: Any, payload: dict, run: RunInfo
) -> cache.CachedAnswer:
    ask = prepared.ask
    return cache.insert_answer(
        conn,
        site_id=ask.site_id,
        cache_type=ask.app_name,
        target_id=ask.target_id,
        input_hash=prepared.hash,
        prompt_version=prepared.version,
        result_json=payload,
        score=_score(ask.app_name, payload),
        triggered_by=run.trigger,
        provider=answer.provider,
        model=answer.model,
        tokens_in=answer.tokens_in,
        tokens_out=answer.tokens_out,
        latency_ms=answer.latency_ms,
        dagster_run_id=run.dagster_run_id,
    )


def _validated_payload(app_name: str, payload: dict) -> dict:
    # The model's own JSON, normalised by the schema (level words mapped, providers split...).
    return validate_answer(app_name, payload).model_dump(mode="json")


def _call_kwargs(ask: Ask, run: RunInfo) -> dict[str, Any]:
    return {
        "site_id": ask.site_id,
        "target_id": ask.target_id,
        "dagster_run_id": run.dagster_run_id,
        "trigger_type": run.trigger,
    }


def _account(outcome: Outcome, answer: Any) -> None:
    outcome.tokens_in += answer.tokens_in
    outcome.tokens_out += answer.tokens_out
    outcome.latency_ms.append(answer.latency_ms)


def _invalid_reason(error: ValidationError | None) -> str:
    """Where the answer broke its schema first, e.g. ``clues.0.category: Field required``."""
    first = error.errors()[0] if error else {}
    where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
    return f"{where}: {first.get('msg', 'invalid')}"


def _invalid(ask: Ask, outcome: Outcome, error: ValidationError | None) -> InvalidAnswerError:
    return InvalidAnswerError(
        f"{outcome.invalid_answers} answer(s) did not validate for {ask.target_id} (last: {_invalid_reason(error)})",
        app_name=ask.app_name,
        code="InvalidAnswer",
        attempts=outcome.calls,
    )


async def _answer_async(
    llm: Any,
    conn: psycopg.Connection,
    prepared: Prepared,
    run: RunInfo,
    semaphore: asyncio.Semaphore,
    on_done: Callable[[Outcome], None],
) -> Outcome:
    ask = prepared.ask
    outcome = Outcome(ask.site_id, ask.app_name, ask.target_id, "answered")
    last_error: ValidationError | None = None
    try:
        for _ in range(VALIDATION_ATTEMPTS):
            async with semaphore:
                outcome.calls += 1  # a failed call is a call too
                answer = await llm.acall_app(ask.app_name, prepared.prompt_text, **_call_kwargs(ask, run))
            _account(outcome, answer)
            try:
                payload = _validated_payload(ask.app_name, answer.payload)
            except ValidationError as exc:
                outcome.invalid_answers += 1
                last_error = exc
                llm.reject_answer(answer, _invalid_reason(exc))  # a few ms on the loop's thread
                continue
            # A few ms on the loop's thread; cached now, whatever happens to the other asks.
            outcome.answer = _store(conn, prepared, answer, payload, run)
            break
        else:
            raise _invalid(ask, outcome, last_error)
    except Exception as exc:  # one target's failure must not cancel the others
        outcome.status, outcome.error, outcome.reason = "failed", exc, f"{type(exc).__name__}: {exc}"
    on_done(outcome)
    return outcome


class _Crashed:
    """An ask's coroutine died of something other than a failed call (e.g. cancellation)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _LoopThread:
    """An asyncio loop on its own thread, taking coroutines from the caller's thread.

    ``acall_app`` runs ``call_app`` in the loop's default executor, sized to the concurrency
    (the stock executor has min(32, cpus + 4) threads: 6 on this 2-core machine).
    """

    def __init__(self, concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="zqyy-llm")
        )
        self.semaphore = asyncio.Semaphore(concurrency)  # binds to the loop on first use
        self.futures: list[concurrent.futures.Future] = []
        self.thread = threading.Thread(target=self.loop.run_forever, name="zqyy-ai-answers", daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> None:
        self.futures.append(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self, *, cancel: bool) -> None:
        if cancel:
            for future in self.futures:
                future.cancel()
        concurrent.futures.wait(self.futures)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


def iter_answers(
    llm: Any,
    database_url: str,
    asks: Iterable[Ask],
    run: RunInfo,
    *,
    concurrency: int,
) -> Iterator[Outcome]:
    """Many asks, at most ``concurrency`` calls in flight; each outcome is yielded as it lands.

    ``asks`` may be lazy: each is checked against the cache (a hit is yielded at once) and a
    miss is handed to an asyncio loop on a background thread right away, so calls start while
    later prompts are still being built, and the caller records each finished target (a
    Dagster materialization, a log line) while the rest are in flight. Calls go out in the
    order of ``asks`` (the semaphore is FIFO). Closing the iterator early cancels what is left.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    finished: queue.Queue = queue.Queue()

    async def guarded(prepared: Prepared, writes: psycopg.Connection, semaphore: asyncio.Semaphore) -> None:
        try:
            await _answer_async(llm, writes, prepared, run, semaphore, finished.put)
        except BaseException as exc:
            finished.put(_Crashed(exc))
            raise

    def take(item: Outcome | _Crashed) -> Outcome:
        if isinstance(item, _Crashed):
            raise item.error
        return item

    # Two connections: reads on the caller's thread, cache writes on the loop's thread.
    with db.connect(database_url, autocommit=True) as reads, db.connect(database_url, autocommit=True) as writes:
        workers = _LoopThread(concurrency)
        submitted = received = 0
        try:
            for ask in asks:
                prepared = prepare(ask, run.provider)
                # One indexed lookup per target: a member run must not read the site's whole cache.
                latest = cache.latest_valid(reads, ask.site_id, ask.app_name, ask.target_id)
                hit = memo_hit(prepared, latest, run)
                if hit:
                    yield hit
                    continue
                workers.submit(guarded(prepared, writes, workers.semaphore))
                submitted += 1
                while not finished.empty():
                    received += 1
                    yield take(finished.get_nowait())
            while received < submitted:
                received += 1
                yield take(finished.get())
        finally:
            workers.close(cancel=received < submitted)


# ----------------------------------------------------------------------------------- metadata


def summarise(outcomes: Iterable[Outcome]) -> dict[str, dg.MetadataValue]:
    """The figures every AI materialization records (Dagster plots the numeric ones)."""
    outcomes = list(outcomes)
    latencies = [ms for o in outcomes for ms in o.latency_ms]
    answers = [o.answer for o in outcomes if o.answer is not None]
    sites: dict[int, set[str]] = {}
    for o in outcomes:
        sites.setdefault(o.site_id, set()).add(o.status)
    failed_sites = {s for s, st in sites.items() if "failed" in st}
    skipped_sites = {s for s, st in sites.items() if st == {"skipped"}}
    return {
        "calls": dg.MetadataValue.int(sum(o.calls for o in outcomes)),
        "cache_hits": dg.MetadataValue.int(sum(1 for o in outcomes if o.status == "hit")),
        "answers_written": dg.MetadataValue.int(sum(1 for o in outcomes if o.status == "answered")),
        "invalid_answers": dg.MetadataValue.int(sum(o.invalid_answers for o in outcomes)),
        "tokens_in": dg.MetadataValue.int(sum(o.tokens_in for o in outcomes)),
        "tokens_out": dg.MetadataValue.int(sum(o.tokens_out for o in outcomes)),
        "latency_p50_ms": dg.MetadataValue.int(int(statistics.median(latencies)) if latencies else 0),
        "latency_max_ms": dg.MetadataValue.int(max(latencies) if latencies else 0),
        "provider": dg.MetadataValue.text(",".join(sorted({a.provider for a in answers})) or "none"),
        "model": dg.MetadataValue.text(",".join(sorted({a.model for a in answers if a.model})) or "none"),
        "prompt_version": dg.MetadataValue.text(",".join(sorted({a.prompt_version for a in answers})) or "none"),
        "sites_ok": dg.MetadataValue.int(len(sites) - len(failed_sites) - len(skipped_sites)),
        "sites_skipped": dg.MetadataValue.int(len(skipped_sites)),
        "sites_failed": dg.MetadataValue.int(len(failed_sites)),
    }
