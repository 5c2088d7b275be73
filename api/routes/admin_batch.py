"""Back office: batch runs, estimated first (calls and tokens) and launched as Dagster runs on confirmation."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from psycopg.types.json import Jsonb

from api.deps import AdminDep, PoolDep, SettingsDep, check_site
from api.schemas.admin import (
    BatchRunConfirmReq,
    BatchRunConfirmResponse,
    BatchRunEstimate,
    BatchRunReq,
)
from api.schemas.common import AUTH_ERRORS, BAD_BODY, CONFLICT, NOT_FOUND, Message, invalid
from api.services import batch
from api.services.pipeline_runs import DagsterUnavailable

router = APIRouter(
    prefix="/api/admin/ai/batch-run",
    tags=["admin: batch runs"],
    responses=AUTH_ERRORS,
)

MEMBER_LEVEL = set(batch.MEMBER_APPS) | set(batch.PAIR_APPS)


@router.post("", response_model=BatchRunEstimate, responses=BAD_BODY)
async def create_batch_run(
    body: BatchRunReq, request: Request, principal: AdminDep, pool: PoolDep, settings: SettingsDep
):
    """Estimate a batch: the LLM calls it would make (answers whose input is unchanged since their
    cached answer are not counted: memoization skips them) and their tokens. Nothing runs until
    `POST /batch-run/confirm` with the `batch_id`, within `BATCH_CONFIRM_WINDOW_S` (10 minutes).

    App2 apps cover the site's time dimension x area combinations (8 for app2_finance, 64 for
    app2a_finance_area); the member apps cover `member_ids` (App4/App5: each of the member's assistants)."""
    site_id = check_site(principal, body.site_id, "body")
    if MEMBER_LEVEL & set(body.app_types) and not body.member_ids:
        raise invalid("body", "member_ids", f"member_ids is required for {sorted(MEMBER_LEVEL & set(body.app_types))}")
    batch_id = batch.new_batch_id()
    app_types: list[str] = list(dict.fromkeys(body.app_types))
    est = await asyncio.to_thread(
        batch.estimate,
        settings.database_url,
        batch_id,
        site_id,
        app_types,
        body.member_ids,
        request.app.state.llm.routes(),  # each app's provider and model: its memo key
        settings.venue.venue_timezone,
    )
    async with pool.connection() as conn:
        per_call = await batch.tokens_per_call(conn, app_types, settings.batch_default_tokens_per_call)
        calls = sum(est.calls.values())
        tokens = sum(n * per_call[app] for app, n in est.calls.items())
        expires_at = datetime.now(UTC) + timedelta(seconds=settings.batch_confirm_window_s)
        await conn.execute(
            """INSERT INTO biz.admin_batches (batch_id, site_id, created_by, app_types, member_ids, estimated_calls,
                                              estimated_tokens, plan, expires_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                batch_id,
                site_id,
                principal.subject,
                app_types,
                list(dict.fromkeys(body.member_ids)),
                calls,
                tokens,
                Jsonb(est.plan),
                expires_at,
            ),
        )
    return {
        "batch_id": batch_id,
        "estimated_calls": calls,
        "estimated_tokens": tokens,
        "expires_at": expires_at,
        "calls_by_app": {a: est.calls[a] for a in app_types},
        "memoized_by_app": {a: est.memoized[a] for a in app_types},
        "skipped_by_app": {a: est.skipped[a] for a in app_types},
        "tokens_per_call": per_call,
        "runs_planned": len(est.plan),
    }


@router.post(
    "/confirm",
    response_model=BatchRunConfirmResponse,
    responses={
        **BAD_BODY,
        **NOT_FOUND,
        **CONFLICT,
        410: {"model": Message, "description": "The confirmation window has passed: estimate again."},
        503: {"model": Message, "description": "Dagster refused a run; the batch is failed, naming the runs launched."},
    },
)
async def confirm_batch_run(
    body: BatchRunConfirmReq, request: Request, principal: AdminDep, pool: PoolDep, settings: SettingsDep
):
    """Launch an estimated batch's runs in Dagster (see the estimate for how they are batched).

    404: no such batch; 410: its confirmation window has passed (estimate again); 409: it was
    confirmed already. When Dagster refuses a run, the batch is marked failed with the runs
    launched so far and the answer is 503 naming them."""
    try:
        batch_id = str(uuid.UUID(body.batch_id))
    except ValueError:
        raise invalid(
            "body", "batch_id", "batch_id must be the UUID POST /api/admin/ai/batch-run answered with", body.batch_id
        ) from None
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT site_id, status, expires_at, now() AS now FROM biz.admin_batches WHERE batch_id = %s",
                (batch_id,),
            )
        ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no batch {batch_id}")
    check_site(principal, row["site_id"])
    if row["status"] != "estimated":
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"batch {batch_id} was confirmed already ({row['status']})"
        )
    if row["expires_at"] <= row["now"]:
        raise HTTPException(
            status.HTTP_410_GONE,
            detail=f"batch {batch_id} expired at {row['expires_at'].isoformat()}; "
            "estimate again with POST /api/admin/ai/batch-run",
        )
    # The claim is one statement, so two workers confirming at once launch the batch once.
    async with pool.connection() as conn:
        claimed = await (
            await conn.execute(
                """UPDATE biz.admin_batches SET status = 'launching', confirmed_at = now(), confirmed_by = %s
               WHERE batch_id = %s AND status = 'estimated' AND expires_at > now() RETURNING plan""",
                (principal.subject, batch_id),
            )
        ).fetchone()
    if claimed is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"batch {batch_id} was confirmed or expired meanwhile")
    # No pooled connection is held while the runs launch (seconds each with the default coordinator).
    runs: list[dict[str, Any]] = []
    dagster = request.app.state.dagster
    for planned in claimed["plan"]:
        dynamic = planned["dynamic_partitions"]
        try:
            run_id = await dagster.launch_job(
                planned["job_name"],
                tags=planned["tags"],
                asset_selection=planned["assets"],
                run_config=planned["run_config"],
                dynamic_partition=(dynamic, planned["partition"]) if dynamic else None,
            )
        except DagsterUnavailable as exc:
            launched = [r["run_id"] for r in runs]
            async with pool.connection() as conn:
                await conn.execute(
                    """UPDATE biz.admin_batches SET status = 'failed', run_ids = %s, error_message = %s
                       WHERE batch_id = %s""",
                    (launched, str(exc), batch_id),
                )
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"{len(launched)} of {len(claimed['plan'])} runs of batch {batch_id} were launched "
                f"({', '.join(launched) or 'none'}); then: {exc}",
            ) from exc
        runs.append(
            {
                "run_id": run_id,
                "url": settings.dagster_run_url(run_id),
                "job_name": planned["job_name"],
                "partition": planned["partition"],
                "assets": planned["assets"],
            }
        )
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE biz.admin_batches SET status = 'launched', run_ids = %s WHERE batch_id = %s",
            ([r["run_id"] for r in runs], batch_id),
        )
    return {"status": "launched", "batch_id": batch_id, "runs": runs}
