"""Launching and watching Dagster runs through Dagster's GraphQL API, over plain HTTP.

The API never imports Dagster (its core would weigh on every API process): it posts GraphQL
documents (``api.services.pipeline_queries``) with ``requests``, in a worker thread per call.
``requests`` rather than an async client: the LLM layer already loads it, where httpx would add
~50 ms and ~7 MB to every API process for a few admin calls a day.

One app is one asset (both App2 apps are the asset ``app2_finance``). Its partition key follows
the AI assets' partitions (``zqyy_assets.core.partition_keys``): ``{site}-{member}`` in the
dynamic ``members`` partitions, ``{site}-{assistant}_{member}`` in ``assistant_members``, and
the App2 multi-partition ``{area}|{time_dimension}`` (Dagster orders dimensions by name).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from api.services import pipeline_queries as q
from api.settings import Settings
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.chains import ASSISTANT_MEMBER_APPS
from zqyy_assets.core.partition_keys import App2Key, AssistantMemberKey, MemberKey
from zqyy_assets.core.prompts import GivenNote
from zqyy_assets.core.tags import FORCE_TAG, NOTE_TAG, PARTITION_TAG, SITE_TAG, TRIGGER_TAG
from zqyy_assets.core.vocabulary import ASSISTANT_MEMBERS, MEMBERS, TERMINAL_RUN_STATUSES

ASSET_JOB = "__ASSET_JOB"  # Dagster's implicit job holding every asset: any single asset can be selected
ADMIN_MANUAL_TRIGGER = "admin_manual"
# The apps partitioned by assistant x member pair (App4, App5): those of the chains over them.
REQUEST_TIMEOUT_S = 30.0


class DagsterUnavailable(Exception):
    """Dagster could not be reached or refused the request; the message says which and why."""


@dataclass(frozen=True)
class AppTarget:
    """Where one app's answer for one request lives: the asset partition and the cache row."""

    app_type: str
    asset: str  # App2's two apps are one asset (app2_finance) over 72 partitions
    partition_key: str
    dynamic_partitions: str | None  # the dynamic partitions def to add the key to, if any
    target_id: str
    tags: dict[str, str]


def app_target(
    app_type: str,
    site_id: int,
    *,
    member_id: int | None = None,
    assistant_id: int | None = None,
    time_dimension: str | None = None,
    area: str | None = None,
    note: GivenNote | None = None,
) -> AppTarget:
    """The partition and cache target of a request already validated by the router."""
    # An admin asking to run an app wants a fresh answer: force past the input-hash memo. The
    # site tag narrows App2 (which otherwise answers for every active site) to this site.
    tags = {TRIGGER_TAG: ADMIN_MANUAL_TRIGGER, FORCE_TAG: "true", SITE_TAG: str(site_id)}
    if note is not None:  # App6 analyses this note (core.prompts.target_builder reads the tag)
        tags[NOTE_TAG] = note.to_tag()
    if app_type in (APP2_SITE_APP, APP2_AREA_APP):
        assert time_dimension is not None and area is not None
        key = App2Key(time_dimension, area)
        # Dagster reads a multi-partition run's key from its per-dimension tags too (it warns that
        # these are non-compliant tag keys, yet writes the same ones for runs it launches itself).
        tags |= {f"{PARTITION_TAG}/{dim}": value for dim, value in key.dimensions.items()}
        return AppTarget(app_type, APP2_SITE_APP, key.partition_key, None, key.target_id, tags)
    assert member_id is not None
    if app_type in ASSISTANT_MEMBER_APPS:
        assert assistant_id is not None
        pair = AssistantMemberKey(site_id, assistant_id, member_id)
        return AppTarget(app_type, app_type, pair.partition_key, ASSISTANT_MEMBERS, pair.target_id, tags)
    member = MemberKey(site_id, member_id)
    return AppTarget(app_type, app_type, member.partition_key, MEMBERS, member.target_id, tags)


class DagsterRuns:
    """The API's Dagster client: every method raises DagsterUnavailable when Dagster cannot be
    reached or refuses. ``aclose()`` when the app stops."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.dagster_graphql_url
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"DAGSTER_GRAPHQL_URL must be an http(s) URL ending in /graphql, got {self.url!r}")
        # Keep-alive connections; Dagster sets no cookies, so the threads share nothing else.
        self._http = requests.Session()
        self._repository: dict[str, str] | None = None

    async def aclose(self) -> None:
        self._http.close()

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Any GraphQL operation's ``data``; DagsterUnavailable when Dagster cannot be reached or errs."""
        return await asyncio.to_thread(self._post, query, variables)

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(
                self.url, json={"query": query, "variables": variables}, timeout=REQUEST_TIMEOUT_S
            )
            body = response.json() if response.content else {}
        except (requests.RequestException, ValueError) as exc:  # refused, timed out, not JSON: all mean "not now"
            raise DagsterUnavailable(f"Dagster GraphQL at {self.url} failed: {type(exc).__name__}: {exc}") from exc
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors or not response.ok or not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            detail = "; ".join(str(e.get("message", e)) for e in errors) if errors else response.text[:500]
            raise DagsterUnavailable(f"Dagster GraphQL at {self.url} failed: HTTP {response.status_code}: {detail}")
        data: dict[str, Any] = body["data"]
        return data

    async def repository(self) -> dict[str, str]:
        """The code location's RepositorySelector (repositoryLocationName, repositoryName)."""
        if self._repository is None:
            data = (await self.graphql(q.REPOSITORIES, {}))["repositoriesOrError"]
            nodes = data.get("nodes") or []
            if data["__typename"] != "RepositoryConnection" or len(nodes) != 1:
                raise DagsterUnavailable(f"expected one Dagster code location at {self.url}, got {data}")
            self._repository = {
                "repositoryLocationName": nodes[0]["location"]["name"],
                "repositoryName": nodes[0]["name"],
            }
        return self._repository

    async def reload_location(self) -> None:
        """Reload the code location (Dagster's "Reload" button): its code server starts again and
        reads its definitions anew; the daemon picks them up at its next workspace refresh."""
        location = (await self.repository())["repositoryLocationName"]
        result = (await self.graphql(q.RELOAD_LOCATION, {"repositoryLocationName": location}))[
            "reloadRepositoryLocation"
        ]
        if result["__typename"] != "WorkspaceLocationEntry":
            why = result.get("message", result["__typename"])
            raise DagsterUnavailable(f"Dagster did not reload {location}: {why}")
        loaded = result.get("locationOrLoadError") or {}
        if loaded.get("__typename") != "RepositoryLocation":
            raise DagsterUnavailable(
                f"code location {location} failed to load again: {loaded.get('message', loaded.get('__typename'))}"
            )

    async def _add_partition(self, name: str, key: str) -> None:
        variables = {"selector": await self.repository(), "name": name, "key": key}
        result = (await self.graphql(q.ADD_DYNAMIC_PARTITION, variables))["addDynamicPartition"]
        # A key that already exists is what we wanted anyway.
        if result["__typename"] not in q.PARTITION_ADDED:
            raise DagsterUnavailable(f"could not add partition {key!r} to {name}: {result.get('message', result)}")

    async def launch(self, target: AppTarget) -> str:
        """Run the app's asset for its partition; the run id."""
        return await self.launch_job(
            ASSET_JOB,
            tags={PARTITION_TAG: target.partition_key, **target.tags},
            asset_selection=[target.asset],
            dynamic_partition=(target.dynamic_partitions, target.partition_key) if target.dynamic_partitions else None,
            what=target.app_type,
        )

    async def launch_job(
        self,
        job_name: str,
        *,
        tags: dict[str, str],
        asset_selection: list[str] | None = None,
        run_config: dict[str, Any] | None = None,
        dynamic_partition: tuple[str, str] | None = None,
        what: str | None = None,
    ) -> str:
        """Launch a run of any job (``ASSET_JOB`` with ``asset_selection`` for a subset of assets).

        ``dynamic_partition`` is (partitions def name, key): added first, as a run of a key that
        does not exist yet is refused. ``what`` names the run in errors (default the job)."""
        if dynamic_partition is not None:
            await self._add_partition(*dynamic_partition)
        # The same execution params as dagster_graphql's submit_job_execution.
        selector = await self.repository() | {
            "pipelineName": job_name,
            "solidSelection": None,
            "assetSelection": None if asset_selection is None else [{"path": [a]} for a in asset_selection],
        }
        params = {
            "selector": selector,
            "runConfigData": run_config or {},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else {},
        }
        result = (await self.graphql(q.LAUNCH_RUN, {"executionParams": params}))["launchPipelineExecution"]
        if result["__typename"] in q.LAUNCHED:
            run_id: str = result["run"]["runId"]
            return run_id
        detail = result.get("message") or result.get("errors") or result.get("invalidStepKey") or result
        raise DagsterUnavailable(f"Dagster refused the run of {what or job_name}: {result['__typename']}: {detail}")

    async def status(self, run_id: str) -> str:
        result = (await self.graphql(q.RUN_STATUS, {"runId": run_id}))["pipelineRunOrError"]
        if "status" not in result:  # PipelineRunNotFoundError, PythonError
            raise DagsterUnavailable(f"could not read the status of run {run_id}: {result.get('message', result)}")
        status: str = result["status"]
        return status

    async def wait(self, run_id: str, *, timeout_s: float, poll_s: float) -> tuple[str, bool]:
        """Poll until the run ends or the time is up: (last status, finished?)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.status(run_id)
            if status in TERMINAL_RUN_STATUSES:
                return status, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return status, False
            await asyncio.sleep(min(poll_s, remaining))

    async def statuses(self, run_ids: list[str]) -> dict[str, str]:
        if not run_ids:
            return {}
        data = (await self.graphql(q.RUN_STATUSES, {"ids": run_ids}))["runsOrError"]
        if data["__typename"] != "Runs":
            raise DagsterUnavailable(f"Dagster could not list runs: {data.get('message', data['__typename'])}")
        return {r["runId"]: r["status"] for r in data["results"]}
