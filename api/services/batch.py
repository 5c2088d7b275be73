"""Batch runs: estimate the LLM calls a batch would make, then launch it as Dagster runs on confirmation.

The estimate asks the same question the AI assets ask before each call, with their own code
(``zqyy_assets.core.prompts`` and ``answering``): build the app's prompt with its builder, hash
it (``answering.prepare``) and compare it with the newest valid cache row (``answering.memo_hit``).
A target whose hash is unchanged is memoized (no call); one whose builder has nothing to ask
(unknown member, no notes...) is skipped, as the asset skips it. Everything else is a call.

A chain app whose input includes an upstream answer (App8 reads App3 and App6, App7 reads App8
and App3, App5 reads App4: the event chains of ``zqyy_assets.core.chains``) is counted as a call
when a selected upstream app of the same target is: the upstream answer changes first, so its
input will have changed by the time it runs.

Tokens: each app's average tokens a call over its recent successful calls in the ledger
(``biz.ai_call_ledger``), else ``batch_default_tokens_per_call`` (2,000, the old service's figure).

The plan (the runs to launch) is computed with the estimate and stored with it in
``biz.admin_batches`` (migration 0010), so any API worker can confirm it, and the confirmation
launches what was estimated:

- member apps (App3, App6, App8, App7): one run per member that needs a call, selecting only the
  apps that need one, in the members partition ``{site}-{member}``;
- assistant x member apps (App4, App5): one run per pair that needs a call (the pairs are the
  member's assistants in ``dws.assistant_member``), partition ``{site}-{assistant}_{member}``;
- App2: one run over the smallest rectangle of partitions holding every partition that needs a
  call (Dagster runs a multi-partition range as that rectangle), narrowed to the site.

Member and pair runs force exactly the apps that need a call (the run tag ``zqyy/force``: a run
selects only those apps). The App2 run
is not forced: force is per run there, and the rectangle's other partitions have an unchanged
hash, so memoization skips them while the changed ones are asked anyway.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api.services.pipeline_runs import ASSET_JOB
from zqyy_assets.core import answering, cache, db, prompts
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.chains import CHAINS
from zqyy_assets.core.llm import ledger
from zqyy_assets.core.llm.providers import Route
from zqyy_assets.core.partition_keys import (
    AssistantMemberKey,
    MemberKey,
    app2_app_name,
    app2_partition_key,
    app2_target_id,
)
from zqyy_assets.core.tags import (
    BATCH_ID_TAG,
    FORCE_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SITE_TAG,
    TRIGGER_TAG,
)
from zqyy_assets.core.vocabulary import AREAS, ASSISTANT_MEMBERS, MEMBERS, TIME_DIMENSIONS

APP2_APPS = (APP2_SITE_APP, APP2_AREA_APP)


def _upstream() -> dict[str, tuple[str, ...]]:
    """Each chained app's upstream apps: every app before it in any chain."""
    upstream: dict[str, list[str]] = {}
    for chain in CHAINS:
        for i, app in enumerate(chain.asset_names):
            ups = upstream.setdefault(app, [])
            ups.extend(up for up in chain.asset_names[:i] if up not in ups)
    return {app: tuple(ups) for app, ups in upstream.items()}


UPSTREAM = _upstream()


def _chain_order(partitions: str) -> tuple[str, ...]:
    """The apps of the chains over ``partitions``, each after its upstream apps."""
    apps = list(dict.fromkeys(a for c in CHAINS if c.partitions == partitions for a in c.asset_names))

    def depth(app: str) -> int:
        return max((depth(up) + 1 for up in UPSTREAM[app]), default=0)

    return tuple(sorted(apps, key=depth))  # stable: first-seen order among equals


MEMBER_APPS = _chain_order(MEMBERS)  # app3, app6, app8, app7
PAIR_APPS = _chain_order(ASSISTANT_MEMBERS)  # app4, app5
BATCH_TRIGGER = "admin_batch"


@dataclass
class Estimate:
    calls: Counter = field(default_factory=Counter)
    memoized: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    plan: list[dict[str, Any]] = field(default_factory=list)


def _needs_call(ask: answering.Ask, latest: cache.CachedAnswer | None, routes: Mapping[str, Route]) -> bool:
    """The asset's own memoization test under the app's route (provider and model): no hit means a call."""
    route = routes[ask.app_name]
    run = answering.RunInfo(provider=route.provider, trigger=BATCH_TRIGGER, force=False, dagster_run_id=None)
    return answering.memo_hit(answering.prepare(ask, route.provider, route.model), latest, run) is None


def _chain(
    conn,
    est: Estimate,
    apps: list[str],
    key: MemberKey | AssistantMemberKey,
    builders: dict,
    routes: Mapping[str, Route],
    tz: str,
) -> list[str]:
    """The apps of one target's chain that need a call, counting each app's outcome."""
    needed: list[str] = []
    for app in apps:
        if any(up in needed for up in UPSTREAM.get(app, ())):
            needed.append(app)
            est.calls[app] += 1
            continue
        try:
            prompt = builders[app](conn, key, tz=tz)
        except prompts.NothingToAsk:
            est.skipped[app] += 1
            continue
        ask = answering.Ask(key.site_id, app, key.target_id, prompt, prompts.PROMPT_VERSIONS[app])
        if _needs_call(ask, cache.latest_valid(conn, key.site_id, app, key.target_id), routes):
            needed.append(app)
            est.calls[app] += 1
        else:
            est.memoized[app] += 1
    return needed


def _run(
    batch_id: str,
    site_id: int,
    partition: str,
    assets: list[str],
    *,
    dynamic: str | None,
    force: bool,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    tags = {TRIGGER_TAG: BATCH_TRIGGER, BATCH_ID_TAG: batch_id, SITE_TAG: str(site_id), **(extra_tags or {})}
    if dynamic is not None:
        tags[PARTITION_TAG] = partition
    if force:  # a tag, not op config: the member apps of a chain share one op (defs/ai/targets.py)
        tags[FORCE_TAG] = "true"
    return {
        "job_name": ASSET_JOB,
        "assets": assets,
        "partition": partition,
        "dynamic_partitions": dynamic,
        "tags": tags,
        "run_config": {},
    }


def _app2(conn, est: Estimate, batch_id: str, site_id: int, apps: list[str], routes: Mapping[str, Route]) -> None:
    finance = prompts.load_site_finance(conn, site_id)
    latest = cache.latest_valid_for_site(conn, site_id, apps)
    needed: list[tuple[int, int]] = []  # (time dimension index, area index)
    for t, time_dimension in enumerate(TIME_DIMENSIONS):
        for a, area in enumerate(AREAS):
            app = app2_app_name(area)
            if app not in apps:
                continue
            if finance is None:  # the asset skips a site with no DWS finance figures
                est.skipped[app] += 1
                continue
            target = app2_target_id(time_dimension, area)
            ask = answering.Ask(
                site_id,
                app,
                target,
                prompts.build_app2_prompt(finance, time_dimension, area),
                prompts.PROMPT_VERSIONS[app],
            )
            if _needs_call(ask, latest.get((app, target)), routes):
                needed.append((t, a))
                est.calls[app] += 1
            else:
                est.memoized[app] += 1
    if not needed:
        return
    # 'all' is area 0, so a rectangle over the area app's needs never takes in the site app's
    # partitions (and the other way round): every partition in it is one the estimate covered.
    t0, t1 = min(t for t, _ in needed), max(t for t, _ in needed)
    a0, a1 = min(a for _, a in needed), max(a for _, a in needed)
    start = str(app2_partition_key(TIME_DIMENSIONS[t0], AREAS[a0]))
    end = str(app2_partition_key(TIME_DIMENSIONS[t1], AREAS[a1]))
    est.plan.append(
        _run(
            batch_id,
            site_id,
            f"{start}...{end}",
            [APP2_SITE_APP],  # both app2 apps are the one asset
            dynamic=None,
            force=False,
            extra_tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
        )
    )


def estimate(
    database_url: str,
    batch_id: str,
    site_id: int,
    app_types: list[str],
    member_ids: list[int],
    routes: Mapping[str, Route],
    tz: str,
) -> Estimate:
    """Synchronous (the prompt builders are): run it in a worker thread."""
    est = Estimate()
    selected = set(app_types)
    with db.connect(database_url, autocommit=True) as conn:
        site = conn.execute("SELECT is_active FROM ods.sites WHERE site_id = %s", (site_id,)).fetchone()
        if site is None or not site["is_active"]:
            # The assets ask nothing for an unknown or inactive site.
            app2_targets = {
                APP2_SITE_APP: len(TIME_DIMENSIONS),
                APP2_AREA_APP: len(TIME_DIMENSIONS) * (len(AREAS) - 1),
            }
            for app in selected:
                est.skipped[app] += app2_targets.get(app, len(set(member_ids)))
            return est
        app2 = [a for a in APP2_APPS if a in selected]
        if app2:
            _app2(conn, est, batch_id, site_id, app2, routes)
        member_apps = [a for a in MEMBER_APPS if a in selected]
        pair_apps = [a for a in PAIR_APPS if a in selected]
        for member_id in dict.fromkeys(member_ids):
            key = MemberKey(site_id, member_id)
            if member_apps and (needed := _chain(conn, est, member_apps, key, prompts.MEMBER_BUILDERS, routes, tz)):
                est.plan.append(_run(batch_id, site_id, key.partition_key, needed, dynamic=MEMBERS, force=True))
            if not pair_apps:
                continue
            assistants = [
                r["assistant_id"]
                for r in conn.execute(
                    """SELECT assistant_id FROM dws.assistant_member
                       WHERE site_id = %s AND member_id = %s ORDER BY assistant_id""",
                    (site_id, member_id),
                )
            ]
            for assistant_id in assistants:
                pair = AssistantMemberKey(site_id, assistant_id, member_id)
                if needed := _chain(conn, est, pair_apps, pair, prompts.ASSISTANT_MEMBER_BUILDERS, routes, tz):
                    est.plan.append(
                        _run(
                            batch_id,
                            site_id,
                            pair.partition_key,
                            needed,
                            dynamic=ASSISTANT_MEMBERS,
                            force=True,
                        )
                    )
    return est


async def tokens_per_call(conn, app_types: list[str], default: int) -> dict[str, int]:
    """Each app's average tokens over its recent successful calls; ``default`` for an app with none."""
    cur = await conn.execute(ledger.RECENT_AVERAGES_SQL, ledger.recent_averages_params(app_types, priced_only=False))
    averages = {r["app_name"]: int(r["tokens_used"]) for r in await cur.fetchall()}
    return {app: averages.get(app, default) for app in app_types}


def new_batch_id() -> str:
    return str(uuid.uuid4())
