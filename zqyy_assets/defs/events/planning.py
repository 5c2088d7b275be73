"""From a window of inbox events to the runs the inbox sensor requests (pure, no I/O).

Run keys are derived from event ids: ``ev42:consumption``, ``ev42:consumption_assistant:7``
(assistant 7 served the visit), ``ev43:task:7``,
``ev40-45:app2_prewarm`` (the DWS completions of one window, batched into one run). A run key
names exactly one run for the life of the instance, so requesting it again is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from zqyy_assets.defs.ai.assets import FORCE_TAG, TRIGGER_TAG
from zqyy_assets.defs.ai.partitions import app2_full_range_tags, assistant_member_partition_key, member_partition_key
from zqyy_assets.defs.events.chains import (
    APP2_PREWARM,
    ASSISTANT_MEMBERS,
    CHAINS,
    CONSUMPTION,
    CONSUMPTION_ASSISTANT_CHAIN,
    CONSUMPTION_CHAIN,
    DWS_COMPLETED,
    MEMBERS,
    NOTE_CHAIN,
    NOTE_CREATED,
    TASK_ASSIGNED,
    TASK_CHAIN,
    Chain,
)
from zqyy_assets.defs.events.inbox import PENDING, Event, PlannedRun

EVENT_ID_TAG = "zqyy/event_id"  # the first (often only) event the run answers
EVENT_COUNT_TAG = "zqyy/event_count"
SITE_TAG = "zqyy/site_id"
SITES_TAG = "zqyy/site_ids"  # app2 prewarm: the comma-separated sites to answer for

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
        run_key=f"ev{event.id}:{chain.run_key_suffix}",
        job_name=chain.job_name,
        partition_key=member_partition_key(event.site_id, event.member_id),
        asset_names=chain.asset_names,
        event_ids=(event.id,),
        tags=_tags(event, chain, site_id=event.site_id),
    )


def _assistant_member_run(event: Event, chain: Chain, assistant_id: int) -> PlannedRun:
    assert event.member_id is not None
    return PlannedRun(
        run_key=f"ev{event.id}:{chain.run_key_suffix}:{assistant_id}",
        job_name=chain.job_name,
        partition_key=assistant_member_partition_key(event.site_id, assistant_id, event.member_id),
        asset_names=chain.asset_names,
        event_ids=(event.id,),
        tags=_tags(event, chain, site_id=event.site_id),
    )


def _prewarm_run(events: Sequence[Event]) -> PlannedRun:
    first, last = events[0].id, events[-1].id
    sites = sorted({e.site_id for e in events})
    tags = {
        **app2_full_range_tags(),  # all 72 partitions in this one run
        TRIGGER_TAG: DWS_COMPLETED,
        EVENT_ID_TAG: str(first),
        EVENT_COUNT_TAG: str(len(events)),
        SITES_TAG: ",".join(str(s) for s in sites),
    }
    if len(sites) == 1:
        tags[SITE_TAG] = str(sites[0])
    if any(e.is_forced for e in events):
        tags[FORCE_TAG] = "true"
    return PlannedRun(
        run_key=f"ev{first}:{APP2_PREWARM.run_key_suffix}" if first == last else f"ev{first}-{last}:{APP2_PREWARM.run_key_suffix}",
        job_name=APP2_PREWARM.job_name,
        partition_key=None,
        asset_names=APP2_PREWARM.asset_names,
        event_ids=tuple(e.id for e in events),
        tags=tags,
    )


def plan_window(events: Sequence[Event]) -> WindowPlan:
    """Decide each pending event of a window: invalid, a same-day duplicate, or its runs.

    Non-forced events whose (type, site, member, business date) already came earlier are
    duplicates. Events that already have runs (planned by an earlier evaluation of the same
    window) are left alone here; the sensor re-requests their stored runs.
    """
    plan = WindowPlan()
    prewarm: list[Event] = []
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
        if event.event_type == CONSUMPTION:
            served = [_assistant_member_run(event, CONSUMPTION_ASSISTANT_CHAIN, a) for a in event.assistant_ids()]
            runs = [_member_run(event, CONSUMPTION_CHAIN), *served]
            label = CONSUMPTION_CHAIN.label + (f" + {CONSUMPTION_ASSISTANT_CHAIN.label}" if served else "")
        elif event.event_type == NOTE_CREATED:
            runs, label = [_member_run(event, NOTE_CHAIN)], NOTE_CHAIN.label
        elif event.event_type == TASK_ASSIGNED:
            runs = [_assistant_member_run(event, TASK_CHAIN, a) for a in event.assistant_ids()]
            label = TASK_CHAIN.label
        elif event.event_type == DWS_COMPLETED:
            prewarm.append(event)
            plan.chains_by_event[event.id] = APP2_PREWARM.label
            continue
        else:  # the table's CHECK constraint makes this unreachable; fail loudly if it changes
            raise ValueError(f"event {event.id}: unknown event type {event.event_type!r}")
        plan.runs.extend(runs)
        plan.chains_by_event[event.id] = label
    if prewarm:
        plan.runs.append(_prewarm_run(prewarm))
    return plan


def partitions_to_add(runs: Sequence[PlannedRun]) -> dict[str, list[str]]:
    """Dynamic partition keys the runs need, per partitions name, in first-use order."""
    keys: dict[str, list[str]] = {MEMBERS: [], ASSISTANT_MEMBERS: []}
    for run in runs:
        chain = _CHAIN_BY_JOB.get(run.job_name)
        if chain is None or chain.partitions is None or run.partition_key is None:
            continue
        if run.partition_key not in keys[chain.partitions]:
            keys[chain.partitions].append(run.partition_key)
    return {name: ks for name, ks in keys.items() if ks}
