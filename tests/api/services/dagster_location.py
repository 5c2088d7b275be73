"""A test-only Dagster code location with the AI assets' names, partitions and cache writes.

The API launches runs by asset name and partition key; these stand-ins keep the real
partitions definitions (``members``, ``assistant_members``, App2's time_dimension x area) and
write a ``biz.ai_cache`` row as the real assets do, with no LLM or DWS behind them, so the
launch / poll / timeout / read path is tested against a real Dagster webserver quickly.
``app7_customer`` sleeps, for the timeout.
"""

import json
import os
import time

import dagster as dg
import psycopg

members = dg.DynamicPartitionsDefinition(name="members")
assistant_members = dg.DynamicPartitionsDefinition(name="assistant_members")
app2 = dg.MultiPartitionsDefinition(
    {
        "time_dimension": dg.StaticPartitionsDefinition(["this_month", "last_month"]),
        "area": dg.StaticPartitionsDefinition(["all", "vip"]),
    }
)


def _write(context: dg.AssetExecutionContext, app: str, site_id: int, target_id: str) -> None:
    result = {"app": app, "target": target_id, "tags": dict(context.run.tags)}
    with psycopg.connect(os.environ["ZQYY_TEST_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                         triggered_by, provider, dagster_run_id)
               VALUES (%s, %s, %s, 'h', 'test', %s, %s, 'offline', %s)""",
            (
                site_id,
                app,
                target_id,
                json.dumps(result),
                context.run.tags.get("zqyy/trigger", "manual"),
                context.run.run_id,
            ),
        )


def _member_asset(name: str, sleep_s: float = 0.0) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=members)
    def _asset(context: dg.AssetExecutionContext) -> None:
        time.sleep(sleep_s)
        site, member = context.partition_key.split("-", 1)
        _write(context, name, int(site), member)

    return _asset


@dg.asset(name="app4_analysis", partitions_def=assistant_members)
def app4_analysis(context: dg.AssetExecutionContext) -> None:
    site, target = context.partition_key.split("-", 1)
    _write(context, "app4_analysis", int(site), target)


@dg.asset(name="app2_finance", partitions_def=app2)
def app2_finance(context: dg.AssetExecutionContext) -> None:
    dims = context.partition_key.keys_by_dimension
    app = "app2_finance" if dims["area"] == "all" else "app2a_finance_area"
    _write(context, app, int(context.run.tags["zqyy/site_id"]), f"{dims['time_dimension']}__{dims['area']}")


@dg.asset(name="app6_note", partitions_def=members)
def app6_note(context: dg.AssetExecutionContext) -> None:
    raise dg.Failure("the note app is down in this test")


defs = dg.Definitions(
    assets=[
        _member_asset("app3_clue"),
        _member_asset("app7_customer", sleep_s=4),
        app4_analysis,
        app2_finance,
        app6_note,
    ],
    executor=dg.in_process_executor,
)
