"""Launching and watching Dagster runs through Dagster's GraphQL API.

``dagster_graphql`` (which imports Dagster's core) is imported once, when the app starts;
request paths only call into the already-built objects. The GraphQL clients are synchronous
(``requests``), so every call runs in a worker thread, and each call builds its own client
because a gql client refuses a second concurrent connection.

One app is one asset (both App2 apps are the asset ``app2_finance``). Its partition key follows the AI assets' partitions
(``zqyy_assets/defs/ai/partitions.py``): ``{site}-{member}`` in the dynamic ``members``
partitions, ``{site}-{assistant}_{member}`` in ``assistant_members``, and the App2
multi-partition ``{area}|{time_dimension}`` (Dagster orders dimensions by name).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.settings import Settings
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.partition_keys import App2Key, AssistantMemberKey, MemberKey
from zqyy_assets.core.tags import FORCE_TAG, PARTITION_TAG, SITE_TAG, TRIGGER_TAG
from zqyy_assets.core.vocabulary import ASSISTANT_MEMBERS, MEMBERS

# Terminal states; anything else (QUEUED, STARTING, STARTED, CANCELING...) is still going.
TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
ASSET_JOB = "__ASSET_JOB"  # Dagster's implicit job holding every asset: any single asset can be selected
ADMIN_MANUAL_TRIGGER = "admin_manual"
ASSISTANT_MEMBER_APPS = ("app4_analysis", "app5_tactics")

_REPOSITORIES_QUERY = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } } }
    ... on PythonError { message }
  }
}
"""

_ADD_PARTITION_MUTATION = """
mutation AddPartition($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

_RUN_STATUSES_QUERY = """
query RunStatuses($ids: [String]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId status } }
    ... on PythonError { message }
  }
}
"""


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
) -> AppTarget:
    """The partition and cache target of a request already validated by the router."""
    # An admin asking to run an app wants a fresh answer: force past the input-hash memo. The
    # site tag narrows App2 (which otherwise answers for every active site) to this site.
    tags = {TRIGGER_TAG: ADMIN_MANUAL_TRIGGER, FORCE_TAG: "true", SITE_TAG: str(site_id)}
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
    def __init__(self, settings: Settings) -> None:
        # Imported here, at startup, not at request time (see the module docstring).
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
        from gql import Client, GraphQLRequest
        from gql.transport.requests import RequestsHTTPTransport

        self._client_cls = DagsterGraphQLClient
        self._error_cls = DagsterGraphQLClientError
        self._gql_client_cls, self._request_cls, self._transport_cls = Client, GraphQLRequest, RequestsHTTPTransport
        self.url = settings.dagster_graphql_url
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"DAGSTER_GRAPHQL_URL must be an http(s) URL ending in /graphql, got {self.url!r}")
        self._host, self._port, self._https = parts.hostname, parts.port, parts.scheme == "https"
        path = parts.path.rstrip("/")
        self._prefix = path[: -len("/graphql")] if path.endswith("/graphql") else path
        self._request_timeout = 30
        self._repository: dict[str, str] | None = None

    # -- synchronous GraphQL calls (run in threads) --
    def _client(self):
        return self._client_cls(
            self._host,
            port_number=self._port,
            use_https=self._https,
            timeout=self._request_timeout,
            path_prefix=self._prefix,
        )

    def _execute(self, query: str, variables: dict[str, Any]) -> dict:
        transport = self._transport_cls(url=self.url, timeout=self._request_timeout, retries=0)
        try:
            with self._gql_client_cls(transport=transport) as session:
                return session.execute(self._request_cls(query, variable_values=variables))
        except Exception as exc:  # connection refused, HTTP error, GraphQL error: all mean "not now"
            raise DagsterUnavailable(f"Dagster GraphQL at {self.url} failed: {type(exc).__name__}: {exc}") from exc

    def _repository_selector(self) -> dict[str, str]:
        if self._repository is None:
            data = self._execute(_REPOSITORIES_QUERY, {})["repositoriesOrError"]
            nodes = data.get("nodes") or []
            if data["__typename"] != "RepositoryConnection" or len(nodes) != 1:
                raise DagsterUnavailable(f"expected one Dagster code location at {self.url}, got {data}")
            self._repository = {
                "repositoryLocationName": nodes[0]["location"]["name"],
                "repositoryName": nodes[0]["name"],
            }
        return self._repository

    def _add_partition(self, name: str, key: str) -> None:
        variables = {"selector": self._repository_selector(), "name": name, "key": key}
        result = self._execute(_ADD_PARTITION_MUTATION, variables)["addDynamicPartition"]
        # A key that already exists is what we wanted anyway.
        if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise DagsterUnavailable(f"could not add partition {key!r} to {name}: {result.get('message', result)}")

    def _submit(self, target: AppTarget) -> str:
        if target.dynamic_partitions:
            self._add_partition(target.dynamic_partitions, target.partition_key)
        repo = self._repository_selector()
        try:
            return self._client().submit_job_execution(
                ASSET_JOB,
                repository_location_name=repo["repositoryLocationName"],
                repository_name=repo["repositoryName"],
                asset_selection=[target.asset],
                tags={"dagster/partition": target.partition_key, **target.tags},
            )
        except self._error_cls as exc:
            raise DagsterUnavailable(f"Dagster refused the run of {target.app_type}: {exc}") from exc
        except Exception as exc:
            raise DagsterUnavailable(f"Dagster GraphQL at {self.url} failed: {type(exc).__name__}: {exc}") from exc

    def _status(self, run_id: str) -> str:
        try:
            return self._client().get_run_status(run_id).value
        except Exception as exc:
            raise DagsterUnavailable(f"could not read the status of run {run_id}: {exc}") from exc

    def _statuses(self, run_ids: list[str]) -> dict[str, str]:
        data = self._execute(_RUN_STATUSES_QUERY, {"ids": run_ids})["runsOrError"]
        if data["__typename"] != "Runs":
            raise DagsterUnavailable(f"Dagster could not list runs: {data.get('message', data['__typename'])}")
        return {r["runId"]: r["status"] for r in data["results"]}

    def _submit_job(
        self,
        job_name: str,
        *,
        tags: dict[str, str],
        asset_selection: list[str] | None = None,
        run_config: dict[str, Any] | None = None,
        dynamic_partition: tuple[str, str] | None = None,
    ) -> str:
        if dynamic_partition is not None:
            self._add_partition(*dynamic_partition)
        repo = self._repository_selector()
        try:
            return self._client().submit_job_execution(
                job_name,
                repository_location_name=repo["repositoryLocationName"],
                repository_name=repo["repositoryName"],
                run_config=run_config or {},
                asset_selection=asset_selection,
                tags=tags,
            )
        except self._error_cls as exc:
            raise DagsterUnavailable(f"Dagster refused the run of {job_name}: {exc}") from exc
        except Exception as exc:
            raise DagsterUnavailable(f"Dagster GraphQL at {self.url} failed: {type(exc).__name__}: {exc}") from exc

    # -- the async face used by the routers --
    async def launch(self, target: AppTarget) -> str:
        return await asyncio.to_thread(self._submit, target)

    async def launch_job(
        self,
        job_name: str,
        *,
        tags: dict[str, str],
        asset_selection: list[str] | None = None,
        run_config: dict[str, Any] | None = None,
        dynamic_partition: tuple[str, str] | None = None,
    ) -> str:
        """Launch a run of any job (``ASSET_JOB`` with ``asset_selection`` for a subset of assets).

        ``dynamic_partition`` is (partitions def name, key): added first, as a run of a key that
        does not exist yet is refused."""
        return await asyncio.to_thread(
            self._submit_job,
            job_name,
            tags=tags,
            asset_selection=asset_selection,
            run_config=run_config,
            dynamic_partition=dynamic_partition,
        )

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict:
        """Any GraphQL operation; DagsterUnavailable when Dagster cannot be reached or errs."""
        return await asyncio.to_thread(self._execute, query, variables)

    async def repository(self) -> dict[str, str]:
        """The code location's RepositorySelector (repositoryLocationName, repositoryName)."""
        return await asyncio.to_thread(self._repository_selector)

    async def wait(self, run_id: str, *, timeout_s: float, poll_s: float) -> tuple[str, bool]:
        """Poll until the run ends or the time is up: (last status, finished?)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = await asyncio.to_thread(self._status, run_id)
            if status in TERMINAL:
                return status, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return status, False
            await asyncio.sleep(min(poll_s, remaining))

    async def statuses(self, run_ids: list[str]) -> dict[str, str]:
        if not run_ids:
            return {}
        return await asyncio.to_thread(self._statuses, run_ids)
