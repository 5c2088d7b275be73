"""Asking an app for one target: memoization, the call, validation, the cache row.

Used by every AI asset (``iter_answers``) and, for the memo lookup, by the API's batch
planning. One ``Ask`` is one (site, app, target, prompt). The steps:

1. the input hash of (app, app version, prompt); when the newest valid cache row carries the
   same hash and the run is not forced, that row is the answer (a hit, no call);
2. otherwise the app is called through the LLM layer; the answer is validated against the
   app's pydantic model and an invalid one is re-asked through the LLM layer's retry loop
   (``llm/retry.py``), up to ``VALIDATION_ATTEMPTS`` calls and never past
   ``MAX_REQUESTS_PER_ANSWER`` requests (the ledger counts the rejected answers too, so a step
   retry of the same run does not start over). A re-ask is not the same prompt again: it
   carries a ``Correction`` (``llm/correction.py``), the invalid answer and every schema error
   in it as ``field.path: message``, in the invalid answer's session;
3. the validated answer, with the ask's ``_references`` (what the prompt was built from,
   written by the code), is inserted at once (autocommit, the worker's own connection), so an
   answer survives whatever happens to the other targets of the same run, and nothing is
   written for a failed call.

No Dagster here: ``summarise`` returns plain numbers and text; ``defs/ai`` makes metadata of them.
"""

from __future__ import annotations

import json
import queue
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from zqyy_assets.core import cache, db, grounding
from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.apps import prompt_version as system_prompt_version
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.core.llm.errors import AttemptError, TransientLLMError
from zqyy_assets.core.llm.providers import Route
from zqyy_assets.core.llm.retry import RetriesExhausted, Retrying
from zqyy_assets.core.llm.service import AppAnswer
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER
from zqyy_assets.core.llm.tracing import memo_hit_span
from zqyy_assets.core.memo_savings import MemoSavings
from zqyy_assets.core.pricing import PriceTable
from zqyy_assets.core.prompts.references import REFERENCES_KEY

# Calls per answer when the model keeps answering outside the schema; each one is a full call
# (with the LLM layer's own retries for transport errors and invalid JSON).
VALIDATION_ATTEMPTS = 3

Status = Literal["hit", "answered", "skipped", "failed"]
Connect = Callable[[], AbstractContextManager[DictConnection]]


class AnswerSource(Protocol):
    """What answering needs of the LLM layer (``LLMService`` or the Dagster ``LLMResource``)."""

    def call_app(self, app_name: str, prompt: str, **kwargs: Any) -> AppAnswer: ...

    def reject_answer(self, answer: AppAnswer, reason: str) -> None: ...


class InvalidAnswerError(TransientLLMError):
    """The app answered JSON that does not fit its schema, every time it was asked."""


@dataclass(frozen=True)
class Ask:
    site_id: int
    app_name: str
    target_id: str
    prompt: dict[str, Any]
    prompt_version: str  # the builder's version
    # What the prompt was built from (``prompts.References``), stored as the answer's
    # ``_references``; not part of the input hash.
    references: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunInfo:
    """What every cache row and ledger row of one run shares."""

    provider: str
    trigger: str
    force: bool
    dagster_run_id: str | None
    # Apps whose ungrounded answers are stored as such and not served (core/grounding, GroundingSettings).
    blocking_apps: frozenset[str] = frozenset(grounding.DEFAULT_BLOCKING_APPS)
    # Each app's route (``LLMService.routes()``); an app not in it is answered by ``provider``.
    routes: Mapping[str, Route] | None = field(default=None, hash=False, compare=False)

    def route(self, app_name: str) -> Route:
        return (self.routes or {}).get(app_name) or Route(self.provider)


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
    cost_cny: float = 0.0  # what its calls cost
    tokens_avoided: int = 0  # a memo hit: what the call it saved would have cost (``memo_savings.py``)
    cost_avoided_cny: float = 0.0


def app_version_for(ask: Ask, provider: str, model: str | None = None) -> str:
    return cache.app_version(
        prompt_version=ask.prompt_version,
        system_prompt_version=system_prompt_version(ask.app_name),
        provider=provider,
        model=model,
    )


@dataclass(frozen=True)
class Prepared:
    ask: Ask
    version: str
    hash: str
    prompt_text: str


def prepare(ask: Ask, provider: str, model: str | None = None) -> Prepared:
    """The ask's memo key under a route: ``provider`` and, for an OpenAI-compatible route, ``model``."""
    version = app_version_for(ask, provider, model)
    return Prepared(ask, version, cache.input_hash(ask.app_name, version, ask.prompt), cache.canonical_json(ask.prompt))


def memo_hit(prepared: Prepared, latest: cache.CachedAnswer | None, run: RunInfo) -> Outcome | None:
    """The cached answer when the newest valid row has this input's hash and the run is not forced,
    or was written by this very run: forced means "not from before this run", so a forced run's
    step retry asks only what failed, and writes no answer twice."""
    if latest is None or latest.input_hash != prepared.hash:
        return None
    if run.force and (run.dagster_run_id is None or latest.dagster_run_id != run.dagster_run_id):
        return None
    ask = prepared.ask
    return Outcome(ask.site_id, ask.app_name, ask.target_id, "hit", answer=latest)


def _score(app_name: str, payload: dict[str, Any]) -> float | None:
    return float(payload["score"]) if app_name == "app6_note" and "score" in payload else None


def _store(
    conn: DictConnection, prepared: Prepared, answer: AppAnswer, payload: dict[str, Any], run: RunInfo
) -> cache.CachedAnswer:
    ask = prepared.ask
    if answer.fallback_for and answer.route is not None:
        # The fallback's answer is memoized under its own route: the next run asks the primary again.
        prepared = prepare(ask, answer.route.provider, answer.route.model)
    return cache.insert_answer(
        conn,
        site_id=ask.site_id,
        cache_type=ask.app_name,
        target_id=ask.target_id,
        input_hash=prepared.hash,
        prompt_version=prepared.version,
        result_json=_with_references(ask, payload),
        score=_score(ask.app_name, payload),
        triggered_by=run.trigger,
        provider=answer.provider,
        model=answer.model,
        tokens_in=answer.tokens_in,
        tokens_out=answer.tokens_out,
        latency_ms=answer.latency_ms,
        dagster_run_id=run.dagster_run_id,
        **grounding.stored_fields(ask.app_name, ask.prompt, payload, run.blocking_apps),
    )


def _validated_payload(app_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    # The model's own JSON, normalised by the schema (level words mapped, providers split...);
    # references are the code's to write, so the model's own are dropped.
    answer = validate_answer(app_name, payload).model_dump(mode="json")
    answer.pop(REFERENCES_KEY, None)
    return answer


def _with_references(ask: Ask, payload: dict[str, Any]) -> dict[str, Any]:
    return payload if ask.references is None else {**payload, REFERENCES_KEY: ask.references}


def _call_kwargs(ask: Ask, run: RunInfo) -> dict[str, Any]:
    return {
        "site_id": ask.site_id,
        "target_id": ask.target_id,
        "dagster_run_id": run.dagster_run_id,
        "trigger_type": run.trigger,
    }


def answer_one(llm: AnswerSource, connect: Connect, prepared: Prepared, run: RunInfo) -> Outcome:
    """Ask, validate, cache; a failure is the outcome's ``error``, never raised (the other asks go on)."""
    ask = prepared.ask
    outcome = Outcome(ask.site_id, ask.app_name, ask.target_id, "answered")
    requests = 0  # HTTP requests this answer cost, rejected answers included
    correction: Correction | None = None  # what was wrong with the last answer, told on the re-ask
    session_id: str | None = None  # the session that answer came back in
    retrying = Retrying(
        max_attempts=VALIDATION_ATTEMPTS,
        retryable=lambda _err: requests < MAX_REQUESTS_PER_ANSWER,
        label=f"{ask.app_name} {ask.target_id}",
    )
    try:
        for attempt in retrying:
            with attempt:
                outcome.calls += 1  # a failed call is a call too
                answer = llm.call_app(
                    ask.app_name,
                    prepared.prompt_text,
                    **_call_kwargs(ask, run),
                    input_hash=prepared.hash,
                    session_id=session_id,
                    correction=correction,
                )
                outcome.tokens_in += answer.tokens_in
                outcome.tokens_out += answer.tokens_out
                outcome.cost_cny += answer.cost_cny
                outcome.latency_ms.append(answer.latency_ms)
                requests += answer.attempts
                try:
                    payload = _validated_payload(ask.app_name, answer.payload)
                except ValidationError as exc:
                    outcome.invalid_answers += 1
                    correction = Correction.from_validation_error(json.dumps(answer.payload, ensure_ascii=False), exc)
                    session_id = answer.session_id
                    llm.reject_answer(answer, correction.reason)
                    raise AttemptError(
                        correction.reason, kind="transient", app_name=ask.app_name, code="InvalidAnswer"
                    ) from exc
                with connect() as conn:  # cached now, whatever happens to the other asks
                    outcome.answer = _store(conn, prepared, answer, payload, run)
    except RetriesExhausted as exhausted:
        error = InvalidAnswerError(
            f"{outcome.invalid_answers} answer(s) did not validate for {ask.target_id} "
            f"(last: {exhausted.error.message})",
            app_name=ask.app_name,
            code="InvalidAnswer",
            attempts=outcome.calls,
        )
        outcome.status, outcome.error, outcome.reason = "failed", error, f"{type(error).__name__}: {error}"
    except Exception as exc:  # one target's failure must not cancel the others
        outcome.status, outcome.error, outcome.reason = "failed", exc, f"{type(exc).__name__}: {exc}"
    return outcome


def iter_answers(
    llm: AnswerSource,
    database_url: str,
    asks: Iterable[Ask],
    run: RunInfo,
    *,
    concurrency: int,
    prices: PriceTable | None = None,
) -> Iterator[Outcome]:
    """Many asks, at most ``concurrency`` calls in flight; each outcome is yielded as it lands.

    ``asks`` may be lazy: each is checked against the cache (a hit is yielded at once) and a
    miss is handed to a bounded thread pool right away, so calls start while later prompts are
    still being built, and the caller records each finished target (a Dagster
    materialization, a log line) while the rest are in flight. Calls go out in the order of
    ``asks`` (the pool's queue is FIFO); each worker writes through its own pooled connection.
    Closing the iterator early cancels the asks not yet started and waits for those in flight.
    Each memo hit is booked with what it saved (``memo_savings.py``, priced with ``prices``) and
    traced (``llm/tracing.py``).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    finished: queue.SimpleQueue[Future[Outcome]] = queue.SimpleQueue()
    writes: ConnectionPool[DictConnection] = ConnectionPool(
        database_url,
        connection_class=DictConnection,
        min_size=1,
        max_size=concurrency,
        kwargs={"autocommit": True, "row_factory": dict_row},
        open=False,
        name="zqyy-ai-answers",
    )
    savings = MemoSavings(prices or PriceTable(), run.provider, run.trigger, run.dagster_run_id)
    with db.connect(database_url, autocommit=True) as reads, writes:
        workers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="zqyy-llm")
        submitted = received = 0
        try:
            for ask in asks:
                route = run.route(ask.app_name)
                prepared = prepare(ask, route.provider, route.model)
                # One indexed lookup per target: a member run must not read the site's whole cache.
                latest = cache.latest_valid(reads, ask.site_id, ask.app_name, ask.target_id)
                hit = memo_hit(prepared, latest, run)
                if hit:
                    _book_hit(reads, savings, hit, prepared, run)
                    yield hit
                    continue
                workers.submit(answer_one, llm, writes.connection, prepared, run).add_done_callback(finished.put)
                submitted += 1
                while not finished.empty():
                    received += 1
                    yield finished.get_nowait().result()
            while received < submitted:
                received += 1
                yield finished.get().result()
        finally:
            workers.shutdown(wait=True, cancel_futures=received < submitted)
            savings.flush(reads)


def _book_hit(conn: DictConnection, savings: MemoSavings, hit: Outcome, prepared: Prepared, run: RunInfo) -> None:
    assert hit.answer is not None  # a hit is a cached answer
    avoided = savings.record(conn, hit.answer)
    hit.tokens_avoided, hit.cost_avoided_cny = avoided.tokens, avoided.cost_cny
    memo_hit_span(
        app_name=hit.app_name,
        provider=run.provider,
        site_id=hit.site_id,
        target_id=hit.target_id,
        input_hash=prepared.hash,
        dagster_run_id=run.dagster_run_id,
        trigger_type=run.trigger,
        tokens_avoided=avoided.tokens,
        cost_avoided_cny=avoided.cost_cny,
    )


# ----------------------------------------------------------------------------------- summary


def summarise(outcomes: Iterable[Outcome]) -> dict[str, int | float | str]:
    """The figures every AI materialization records, as plain numbers and text, in display order."""
    outcomes = list(outcomes)
    latencies = [ms for o in outcomes for ms in o.latency_ms]
    answers = [o.answer for o in outcomes if o.answer is not None]
    sites: dict[int, set[str]] = {}
    for o in outcomes:
        sites.setdefault(o.site_id, set()).add(o.status)
    failed_sites = {s for s, st in sites.items() if "failed" in st}
    skipped_sites = {s for s, st in sites.items() if st == {"skipped"}}
    return {
        "calls": sum(o.calls for o in outcomes),
        "cache_hits": sum(1 for o in outcomes if o.status == "hit"),
        "answers_written": sum(1 for o in outcomes if o.status == "answered"),
        "invalid_answers": sum(o.invalid_answers for o in outcomes),
        "tokens_in": sum(o.tokens_in for o in outcomes),
        "tokens_out": sum(o.tokens_out for o in outcomes),
        "cost_cny": round(sum(o.cost_cny for o in outcomes), 6),
        "memo_tokens_avoided": sum(o.tokens_avoided for o in outcomes),
        "memo_cost_avoided_cny": round(sum(o.cost_avoided_cny for o in outcomes), 6),
        "cost_cny_by_site": _cost_by_site(outcomes),
        "latency_p50_ms": int(statistics.median(latencies)) if latencies else 0,
        "latency_max_ms": max(latencies) if latencies else 0,
        "provider": ",".join(sorted({a.provider for a in answers})) or "none",
        "model": ",".join(sorted({a.model for a in answers if a.model})) or "none",
        "prompt_version": ",".join(sorted({a.prompt_version for a in answers})) or "none",
        "sites_ok": len(sites) - len(failed_sites) - len(skipped_sites),
        "sites_skipped": len(skipped_sites),
        "sites_failed": len(failed_sites),
    }


def _cost_by_site(outcomes: list[Outcome]) -> str:
    """``1: 0.0123, 2: 0.0119`` (CNY the calls cost, per site), or ``none``."""
    costs: dict[int, float] = {}
    for o in outcomes:
        costs[o.site_id] = costs.get(o.site_id, 0.0) + o.cost_cny
    return ", ".join(f"{site}: {cost:.6f}" for site, cost in sorted(costs.items())) or "none"
