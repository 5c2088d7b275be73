"""``GET /metrics``: the Prometheus text format, for an admin token (README "Metrics and SSE").

A scraper inside the cluster can use the port of ``METRICS_PORT`` instead, with no token. Left
out of the OpenAPI document: it is for Prometheus, not for the API's clients."""

import asyncio

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import AdminDep, MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(_admin: AdminDep, scrape: MetricsDep) -> Response:
    if scrape is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="metrics are off (METRICS_ENABLED=false)")
    body = await asyncio.to_thread(scrape.scrape)  # reads Postgres with a blocking connection
    return Response(body, media_type=CONTENT_TYPE_LATEST)
