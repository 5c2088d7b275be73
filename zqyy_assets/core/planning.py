"""From a window of inbox events to the runs the inbox sensor requests (pure, no I/O).

Run keys are derived from event ids: ``ev42:consumption``, ``ev42:consumption_assistant:7``
(assistant 7 served the visit), ``ev43:task:7``, ``ev40-45:consumption`` (a burst's new
members batched into one range run), ``ev40-45:app2_prewarm`` (the DWS completions of one
window, batched into one run). A run key names exactly one run for the life of the instance,
so requesting it again is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from zqyy_assets.core.chains import (
    APP2_PREWARM,
    CHAINS,
    CONSUMPTION_ASSISTANT_CHAIN,
    CONSUMPTION_CHAIN,
    NOTE_CHAIN,
    TASK_CHAIN,
    Chain,
)
from zqyy_assets.core.event_runs import PlannedRun
from zqyy_assets.core.inbox import Event
from zqyy_assets.core.partition_keys import (
    app2_full_range_tags,
    assistant_member_partition_key,
    member_partition_key,
)
from zqyy_assets.core.tags import (
    EVENT_COUNT_TAG,
    EVENT_ID_TAG,
    FORCE_TAG,
    PARTITION_KEYS_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SITE_TAG,
    SITES_TAG,
    SPLIT_FROM_TAG,
    TRIGGER_TAG,
)
from zqyy_assets.core.vocabulary import (
    ASSISTANT_MEMBERS,
    CONSUMPTION,
    DWS_COMPLETED,
    MEMBERS,
    NOTE_CREATED,
    PENDING,
    TASK_ASSIGNED,
)

INBOX_SENSOR_NAME = "ai_events_sensor"

RANGE_MAX = 50  # keys per range run: bounds a run's length and what one failure takes down

_CHAIN_BY_JOB = {c.job_name: c for c in CHAINS}


@dataclass
class WindowPlan:
    runs: list[PlannedRun] = field(default_factory=list)  # new runs, in event order
    chains_by_event: dict[int, str] = field(default_factory=dict)  # event id -> app_chain label
    duplicates: dict[int, int] = field(default_factory=dict)  # event id -> the first event of its key
    invalid: dict[int, str] = field(default_factory=dict)  # event id -> reason


def _tags(event: Event, chain: Chain, *, site_id: int) -> dict[str, str]:
    tags = {TRIGGER_TAG: event.event_type, EVENT_ID_TAG: str(event.id), EVENT_COUNT_TAG: "1", SITE_TAG: str(site_id)}
    if event.is_forced:
        tags[FORCE_TAG] = "true"
    return tags


def _member_run(event: Event, chain: Chain) -> PlannedRun:
    assert event.member_id is not None
    return PlannedRun(
        run_key=f"ev{event.id}:{chain.name}",
        job_name=chain.job_name,
        partition_key=member_partition_key(event.site_id, event.member_id),
        asset_names=chain.asset_names,
        event_ids=(event.id,),
        tags=_tags(event, chain, site_id=event.site_id),
    )


def _assistant_member_run(event: Event, chain: Chain, assistant_id: int) -> PlannedRun:
    assert event.member_id is not None
    return PlannedRun(
        run_key=f"ev{event.id}:{chain.name}:{assistant_id}",
        job_name=chain.job_name,
        partition_key=assistant_member_partition_key(event.site_id, assistant_id, event.member_id),
        asset_names=chain.asset_names,
        event_ids=(event.id,),
        tags=_tags(event, chain, site_id=event.site_id),
    )


def _member_key(run: PlannedRun) -> str:
    """The partition key of a member chain's own run (every such run has one)."""
    assert run.partition_key is not None, run.run_key
    return run.partition_key


def _event_span(events: Sequence[Event]) -> str:
    """``ev42`` for one event, ``ev40-45`` for the events of a batch (first and last id)."""
    first, last = events[0].id, events[-1].id
    return f"ev{first}" if first == last else f"ev{first}-{last}"


def _batch_run(chain: Chain, events: Sequence[Event], tags: dict[str, str]) -> PlannedRun:
    """One run of ``chain`` answering several events: ``tags`` say what it covers; the events,
    their site (when they share one) and the run key come from the events."""
    sites = sorted({e.site_id for e in events})
    tags = {**tags, EVENT_ID_TAG: str(events[0].id), EVENT_COUNT_TAG: str(len(events))}
    if len(sites) == 1:
        tags[SITE_TAG] = str(sites[0])
    return PlannedRun(
        run_key=f"{_event_span(events)}:{chain.name}",
        job_name=chain.job_name,
        partition_key=None,
        asset_names=chain.asset_names,
        event_ids=tuple(e.id for e in events),
        tags=tags,
    )


def _prewarm_run(events: Sequence[Event]) -> PlannedRun:
    tags = {
        **app2_full_range_tags(),  # all 72 partitions in this one run
        TRIGGER_TAG: DWS_COMPLETED,
        SITES_TAG: ",".join(str(s) for s in sorted({e.site_id for e in events})),
    }
    if any(e.is_forced for e in events):
        tags[FORCE_TAG] = "true"
    return _batch_run(APP2_PREWARM, events, tags)


def _range_run(chain: Chain, items: Sequence[tuple[Event, PlannedRun]]) -> PlannedRun:
    """One run of ``chain`` over keys added together (contiguous in the partitions' order)."""
    events = list({event.id: event for event, _ in items}.values())  # an event may bring several keys
    keys = [_member_key(run) for _, run in items]
    tags = {
        RANGE_START_TAG: keys[0],
        RANGE_END_TAG: keys[-1],
        PARTITION_KEYS_TAG: ",".join(keys),
        TRIGGER_TAG: events[0].event_type,
    }
    return _batch_run(chain, events, tags)


def _member_chain_runs(event: Event) -> tuple[list[tuple[Chain, PlannedRun]], str]:
    """A member event's own runs (one per chain and key) and its app_chain label."""
    if event.event_type == CONSUMPTION:
        served = [
            (CONSUMPTION_ASSISTANT_CHAIN, _assistant_member_run(event, CONSUMPTION_ASSISTANT_CHAIN, a))
            for a in event.assistant_ids()
        ]
        label = CONSUMPTION_CHAIN.label + (f" + {CONSUMPTION_ASSISTANT_CHAIN.label}" if served else "")
        return [(CONSUMPTION_CHAIN, _member_run(event, CONSUMPTION_CHAIN)), *served], label
    if event.event_type == NOTE_CREATED:
        return [(NOTE_CHAIN, _member_run(event, NOTE_CHAIN))], NOTE_CHAIN.label
    if event.event_type == TASK_ASSIGNED:
        runs = [(TASK_CHAIN, _assistant_member_run(event, TASK_CHAIN, a)) for a in event.assistant_ids()]
        return runs, TASK_CHAIN.label
    # the table's CHECK constraint makes this unreachable; fail loudly if it changes
    raise ValueError(f"event {event.id}: unknown event type {event.event_type!r}")


def _partition_of(chain: Chain, run: PlannedRun) -> tuple[str, str]:
    assert chain.partitions is not None  # member chains run on dynamic partitions
    return chain.partitions, _member_key(run)


# Which of some keys exist in a dynamic partitions definition: (name, keys) -> the existing ones.
ExistingKeys = Callable[[str, Collection[str]], AbstractSet[str]]


def plan_window(
    events: Sequence[Event],
    *,
    range_chains: frozenset[str] = frozenset(),
    existing_keys: ExistingKeys | None = None,
    used_keys: Iterable[tuple[str, str]] = (),
) -> WindowPlan:
    """Decide each pending event of a window: invalid, a same-day duplicate, or its runs.

    Non-forced events whose (type, site, member, business date) already came earlier are
    duplicates. Events that already have runs (planned by an earlier evaluation of the same
    window) are left alone here; the sensor re-requests their stored runs.

    Batching: a run can cover several dynamic partitions only as a range, and a range is every
    key between its ends in the order keys were added. Keys this window adds are added together,
    so for chains in ``range_chains`` (their assets answer a range in one run) the window's
    first-time keys become one run per chain (at most ``RANGE_MAX`` keys each); keys that already
    exist, forced events and a key's second use in the window keep a run of their own.
    ``existing_keys`` is asked once per partitions definition, about the window's own candidate
    keys only, so its cost follows the window, not the number of keys. ``used_keys`` are keys of
    runs re-requested from an earlier evaluation.
    """
    plan = WindowPlan()
    prewarm: list[Event] = []
    decided: list[tuple[Event, list[tuple[Chain, PlannedRun]]]] = []
    for event in events:
        if event.status != PENDING or event.has_runs:
            continue
        reason = event.invalid_reason()
        if reason is not None:
            plan.invalid[event.id] = reason
            continue
        if event.first_of_day is not None and not event.is_forced:
            plan.duplicates[event.id] = event.first_of_day
            continue
        if event.event_type == DWS_COMPLETED:
            prewarm.append(event)
            plan.chains_by_event[event.id] = APP2_PREWARM.label
            continue
        runs, plan.chains_by_event[event.id] = _member_chain_runs(event)
        decided.append((event, runs))

    used = set(used_keys)
    member_runs = [(event, chain, run, _partition_of(chain, run)) for event, runs in decided for chain, run in runs]
    existing = _existing(
        existing_keys,
        [key for event, chain, _, key in member_runs if chain.name in range_chains and not event.is_forced],
    )
    batches: dict[str, list[list[tuple[Event, PlannedRun]]]] = {}
    for event, chain, run, key in member_runs:
        if (
            existing is not None
            and chain.name in range_chains
            and not event.is_forced
            and key not in used
            and key not in existing
        ):
            chain_batches = batches.setdefault(chain.name, [[]])
            if len(chain_batches[-1]) == RANGE_MAX:
                chain_batches.append([])
            chain_batches[-1].append((event, run))
        else:
            plan.runs.append(run)
        used.add(key)
    for chain in CHAINS:
        for batch in batches.get(chain.name, []):
            plan.runs.append(batch[0][1] if len(batch) == 1 else _range_run(chain, batch))
    if prewarm:
        plan.runs.append(_prewarm_run(prewarm))
    return plan


def _existing(existing_keys: ExistingKeys | None, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]] | None:
    """The (partitions, key) pairs among ``keys`` that exist: one question per partitions name."""
    if existing_keys is None:
        return None
    by_name: dict[str, set[str]] = {}
    for name, key in keys:
        by_name.setdefault(name, set()).add(key)
    return {(name, key) for name, wanted in by_name.items() for key in existing_keys(name, wanted)}


def run_partition_keys(run: PlannedRun) -> list[str]:
    """The dynamic partition keys a run materializes, in order (a range run lists its own)."""
    if run.partition_key is not None:
        return [run.partition_key]
    listed = run.tags.get(PARTITION_KEYS_TAG)
    return listed.split(",") if listed else []


def partitions_to_add(runs: Sequence[PlannedRun]) -> dict[str, list[str]]:
    """Dynamic partition keys the runs need, per partitions name: every range's keys first and
    together, in the range's order (so each range spans exactly its own keys), then the rest."""
    keys: dict[str, list[str]] = {MEMBERS: [], ASSISTANT_MEMBERS: []}
    ranges_first = sorted(runs, key=lambda r: r.partition_key is not None)
    for run in ranges_first:
        chain = _CHAIN_BY_JOB.get(run.job_name)
        if chain is None or chain.partitions is None:
            continue
        for key in run_partition_keys(run):
            if key not in keys[chain.partitions]:
                keys[chain.partitions].append(key)
    return {name: ks for name, ks in keys.items() if ks}


def is_range_run(run: PlannedRun) -> bool:
    """A member chain's run over a batch of keys (see ``plan_window``)."""
    return run.partition_key is None and PARTITION_KEYS_TAG in run.tags


def split_range_run(run: PlannedRun, events: Sequence[Event]) -> list[PlannedRun]:
    """The runs that replace a failed range run: each of its events' own runs for its keys in the
    range, the very runs (and run keys) the event would have had unbatched."""
    chain = _CHAIN_BY_JOB[run.job_name]
    keys = set(run_partition_keys(run))
    solo: list[PlannedRun] = []
    for event in events:
        if chain.partitions == MEMBERS:
            candidates = [_member_run(event, chain)]
        else:
            candidates = [_assistant_member_run(event, chain, a) for a in event.assistant_ids()]
        solo.extend(
            replace(c, tags={**c.tags, SPLIT_FROM_TAG: run.run_key}) for c in candidates if c.partition_key in keys
        )
    return solo
