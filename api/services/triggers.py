"""Dagster's sensors and schedules as the admin web's triggers (``TriggerItem`` of seeds/000).

Everything about a trigger's state comes from Dagster's GraphQL API (``sensorsOrError`` /
``schedulesOrError`` with their instigation state, newest tick and next tick), and starting or
stopping one goes through its mutations (``startSensor`` / ``stopSensor`` / ``startSchedule`` /
``stopRunningSchedule``); nothing reads Dagster's storage tables.

Ids: the client's ``TriggerItem.id`` is a number, Dagster names triggers by string. Each
(kind, name) gets a row in ``biz.admin_triggers`` (migration 0010) the first time it is listed;
its identity id never changes, so ids are stable across restarts, API workers and code
reloads, and a renamed sensor is a new trigger with a new id.

The prewarm schedule's cron is the one exception to "Dagster's API changes it": Dagster fixes a
cron when the code location loads, so the admin's cron is saved in ``biz.schedule_crons``, which
the code location reads when it loads (``zqyy_assets.core.schedules``), and the location is then
reloaded through ``reloadRepositoryLocation``. A saved cron Dagster has not loaded yet (it could
not be reloaded) shows as ``trigger_config.saved_cron_expression`` with a ``last_error`` saying so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from api.services import AsyncConn
from api.services.pipeline_runs import DagsterRuns, DagsterUnavailable
from zqyy_assets.core import schedules

Kind = Literal["sensor", "schedule"]

_TICK = "ticks(limit: 1) { status timestamp error { message } }"

_LIST_QUERY = f"""
query Triggers($selector: RepositorySelector!) {{
  sensorsOrError(repositorySelector: $selector) {{
    __typename
    ... on Sensors {{ results {{
      name description minIntervalSeconds sensorType targets {{ pipelineName }}
      sensorState {{ id status nextTick {{ timestamp }} {_TICK} }}
    }} }}
    ... on Error {{ message }}
  }}
  schedulesOrError(repositorySelector: $selector) {{
    __typename
    ... on Schedules {{ results {{
      name description cronSchedule executionTimezone pipelineName
      scheduleState {{ id status {_TICK} }}
      futureTicks(limit: 1) {{ results {{ timestamp }} }}
    }} }}
    ... on Error {{ message }}
  }}
}}
"""

_START_SENSOR = """
mutation StartSensor($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on Error { message } }
}
"""
_STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) { __typename ... on Error { message } }
}
"""
_START_SCHEDULE = """
mutation StartSchedule($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) { __typename ... on Error { message } }
}
"""
_STOP_SCHEDULE = """
mutation StopSchedule($id: String!) {
  stopRunningSchedule(id: $id) { __typename ... on Error { message } }
}
"""
_OK = {"Sensor", "StopSensorMutationResult", "ScheduleStateResult"}


class TriggerRefused(Exception):
    """Dagster answered but refused the change (unauthorized, not found, an error in the code location)."""


def _when(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def _tick_fields(state: dict) -> dict[str, Any]:
    tick = (state.get("ticks") or [None])[0]
    error = None
    if tick and tick["status"] == "FAILURE":
        error = (tick.get("error") or {}).get("message") or "the last evaluation failed"
    return {
        "last_run_at": _when(tick["timestamp"]) if tick else None,
        "last_tick_status": tick["status"] if tick else None,
        "last_error": error,
    }


def _ui_path(repository: dict[str, str]) -> str:
    # Dagster's UI names a Definitions object's repository by its location alone.
    name, location = repository["repositoryName"], repository["repositoryLocationName"]
    return location if name == "__repository__" else f"{name}@{location}"


def _dagster_items(data: dict, repository: dict[str, str], ui_base: str) -> list[dict]:
    """Dagster's answer as TriggerItem fields (without the numeric id)."""
    items = []
    for key in ("sensorsOrError", "schedulesOrError"):
        if data[key]["__typename"] not in ("Sensors", "Schedules"):
            raise DagsterUnavailable(
                f"Dagster could not list {key[:-7]}: {data[key].get('message', data[key]['__typename'])}"
            )
    where = f"{ui_base}/locations/{_ui_path(repository)}"
    for sensor in data["sensorsOrError"]["results"]:
        state = sensor["sensorState"]
        items.append(
            {
                "kind": "sensor",
                "job_name": sensor["name"],
                "job_type": "sensor",
                "trigger_condition": "event",
                "trigger_config": {
                    "sensor_type": sensor["sensorType"],
                    "min_interval_seconds": sensor["minIntervalSeconds"],
                    "jobs": [t["pipelineName"] for t in sensor.get("targets") or []],
                },
                "status": "enabled" if state["status"] == "RUNNING" else "disabled",
                "dagster_description": sensor.get("description"),
                "next_run_at": _when((state.get("nextTick") or {}).get("timestamp"))
                if state["status"] == "RUNNING"
                else None,
                "dagster_url": f"{where}/sensors/{sensor['name']}",
                "_state_id": state["id"],
                **_tick_fields(state),
            }
        )
    for schedule in data["schedulesOrError"]["results"]:
        state = schedule["scheduleState"]
        future = (schedule.get("futureTicks") or {}).get("results") or []
        items.append(
            {
                "kind": "schedule",
                "job_name": schedule["name"],
                "job_type": "schedule",
                "trigger_condition": "cron",
                "trigger_config": {
                    "cron_expression": schedule["cronSchedule"],
                    "execution_timezone": schedule.get("executionTimezone"),
                    "jobs": [schedule["pipelineName"]],
                },
                "status": "enabled" if state["status"] == "RUNNING" else "disabled",
                "dagster_description": schedule.get("description"),
                "next_run_at": _when(future[0]["timestamp"]) if future and state["status"] == "RUNNING" else None,
                "dagster_url": f"{where}/schedules/{schedule['name']}",
                "_state_id": state["id"],
                **_tick_fields(state),
            }
        )
    return items


async def _ids(conn: AsyncConn, items: list[dict]) -> dict[tuple[str, str], dict]:
    """Each (kind, name)'s row in biz.admin_triggers, adding the ones seen for the first time."""
    if items:
        await conn.execute(
            # Only unseen names draw an id (a conflicting insert would still burn one), so ids stay small.
            """INSERT INTO biz.admin_triggers (kind, name)
               SELECT t.kind, t.name FROM unnest(%s::text[], %s::text[]) AS t(kind, name)
               WHERE NOT EXISTS (SELECT 1 FROM biz.admin_triggers a WHERE a.kind = t.kind AND a.name = t.name)
               ON CONFLICT (kind, name) DO NOTHING""",
            ([i["kind"] for i in items], [i["job_name"] for i in items]),
        )
    rows = await (
        await conn.execute("SELECT id, kind, name, description FROM biz.admin_triggers ORDER BY id")
    ).fetchall()
    return {(r["kind"], r["name"]): r for r in rows}


async def saved_crons(conn: AsyncConn) -> dict[str, dict]:
    """The admins' saved crons by schedule name."""
    rows = await (
        await conn.execute("SELECT schedule_name, cron_expression, updated_by, updated_at FROM biz.schedule_crons")
    ).fetchall()
    return {r["schedule_name"]: r for r in rows}


async def save_cron(conn: AsyncConn, schedule_name: str, cron: str, updated_by: str) -> None:
    """Save the schedule's cron (already checked) for the code location's next load."""
    await conn.execute(schedules.SAVE_SQL, (schedule_name, cron, updated_by))


def _with_cron(item: dict, saved: dict | None) -> dict:
    """A schedule's item with whether its cron is editable and any saved cron Dagster has not loaded."""
    if item["kind"] != "schedule":
        return item
    config = item["trigger_config"] | {"cron_editable": item["job_name"] in schedules.EDITABLE_SCHEDULES}
    current = config.get("cron_expression")
    if saved is not None and saved["cron_expression"] != current:
        config["saved_cron_expression"] = saved["cron_expression"]
        pending = (
            f"the cron {saved['cron_expression']!r} saved by {saved['updated_by']} applies when Dagster next "
            "loads the code location" + (f"; Dagster still has {current!r}" if current else "")
        )
        item = item | {"last_error": f"{item['last_error']}; {pending}" if item["last_error"] else pending}
    return item | {"trigger_config": config}


def _public(item: dict, row: dict, saved: dict[str, dict]) -> dict:
    item = {k: v for k, v in item.items() if not k.startswith("_")}
    item = _with_cron(item, saved.get(item["job_name"]))
    return item | {"id": row["id"], "description": row["description"] or item["dagster_description"]}


async def list_triggers(conn: AsyncConn, runs: DagsterRuns, ui_base: str) -> list[dict]:
    """Every sensor and schedule of the code location, by id. Raises DagsterUnavailable."""
    items = await _live_items(runs, ui_base)
    rows = await _ids(conn, items)
    saved = await saved_crons(conn)
    return sorted((_public(i, rows[(i["kind"], i["job_name"])], saved) for i in items), key=lambda i: i["id"])


async def _live_items(runs: DagsterRuns, ui_base: str) -> list[dict]:
    repository = await runs.repository()
    data = await runs.graphql(_LIST_QUERY, {"selector": repository})
    return _dagster_items(data, repository, ui_base)


async def known_triggers(conn: AsyncConn, why: str, trigger_id: int | None = None) -> list[dict]:
    """What this service last saw, for when Dagster cannot be asked: ids and names, state unknown
    (one trigger's with ``trigger_id``)."""
    rows = await (
        await conn.execute(
            "SELECT id, kind, name, description FROM biz.admin_triggers WHERE %(id)s::bigint IS NULL OR id = %(id)s "
            "ORDER BY id",
            {"id": trigger_id},
        )
    ).fetchall()
    saved = await saved_crons(conn)
    return [
        _with_cron(
            {
                "id": r["id"],
                "kind": r["kind"],
                "job_name": r["name"],
                "job_type": r["kind"],
                "trigger_condition": "event" if r["kind"] == "sensor" else "cron",
                "trigger_config": {},
                "status": "unknown",
                "description": r["description"],
                "dagster_description": None,
                "last_run_at": None,
                "next_run_at": None,
                "last_error": why,
                "last_tick_status": None,
                "dagster_url": None,
            },
            saved.get(r["name"]),
        )
        for r in rows
    ]


async def trigger_row(conn: AsyncConn, trigger_id: int) -> dict | None:
    cur = await conn.execute("SELECT id, kind, name, description FROM biz.admin_triggers WHERE id = %s", (trigger_id,))
    return await cur.fetchone()


async def live_trigger(conn: AsyncConn, runs: DagsterRuns, ui_base: str, row: dict) -> dict | None:
    """The trigger's current item from Dagster, or None when the code location no longer defines it."""
    items = await _live_items(runs, ui_base)
    match = next((i for i in items if (i["kind"], i["job_name"]) == (row["kind"], row["name"])), None)
    if match is None:
        return None
    return _public(match, row, await saved_crons(conn)) | {"_state_id": match["_state_id"]}


async def set_description(conn: AsyncConn, trigger_id: int, description: str | None) -> None:
    await conn.execute(
        "UPDATE biz.admin_triggers SET description = %s, updated_at = now() WHERE id = %s", (description, trigger_id)
    )


async def set_running(runs: DagsterRuns, item: dict, running: bool) -> None:
    """Start or stop the sensor or schedule in Dagster (a no-op when it already is)."""
    repository = await runs.repository()
    if item["kind"] == "sensor":
        if running:
            query, variables = _START_SENSOR, {"selector": repository | {"sensorName": item["job_name"]}}
        else:
            query, variables = _STOP_SENSOR, {"id": item["_state_id"]}
    elif running:
        query, variables = _START_SCHEDULE, {"selector": repository | {"scheduleName": item["job_name"]}}
    else:
        query, variables = _STOP_SCHEDULE, {"id": item["_state_id"]}
    result = next(iter((await runs.graphql(query, variables)).values()))
    if result["__typename"] not in _OK:
        raise TriggerRefused(
            f"Dagster refused to {'start' if running else 'stop'} {item['kind']} "
            f"{item['job_name']}: {result.get('message', result['__typename'])}"
        )
