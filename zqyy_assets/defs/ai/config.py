"""Run config of the AI assets, and what a run's config and tags say about the run.

Run controls: ``force`` (config) or the run tag ``zqyy/force=true`` bypasses memoization;
``trigger`` (config) or the run tag ``zqyy/trigger`` names what triggered the run (cache
``triggered_by``; App8's clue source). App2 answers for every active site unless ``site_ids``
(config) or the tag ``zqyy/site_ids`` (``1,2``) or ``zqyy/site_id`` narrows it.
"""

# No `from __future__ import annotations`: Dagster reads the config annotations at definition
# time and cannot resolve them from strings.
import dagster as dg
from pydantic import Field

from zqyy_assets.core.answer_runs import parse_site_ids
from zqyy_assets.core.answering import RunInfo
from zqyy_assets.core.settings import GroundingSettings
from zqyy_assets.core.tags import DEFAULT_TRIGGER, FORCE_TAG, SITE_TAG, SITES_TAG, TRIGGER_TAG, is_true
from zqyy_assets.defs.ai.resources import LLMResource

DEFAULT_CONCURRENCY = 8

# Two quick tries inside the LLM layer, then one later step retry (see MAX_REQUESTS_PER_ANSWER in core/llm/settings.py).
MEMBER_RETRY_POLICY = dg.RetryPolicy(
    max_retries=1, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class AIRunConfig(dg.Config):
    force: bool = Field(False, description="Call the app even when the cached answer has the same input hash.")
    trigger: str | None = Field(
        None, description=f"What triggered the run; default: the {TRIGGER_TAG} tag, else 'manual'."
    )


class ConcurrentRunConfig(AIRunConfig):
    concurrency: int = Field(
        DEFAULT_CONCURRENCY, ge=1, le=64, description="LLM calls in flight at once when a run asks for several targets."
    )


class App2Config(ConcurrentRunConfig):
    as_of_date: str | None = Field(
        None, description="Business date the windows end at (YYYY-MM-DD); default each site's latest DWS date."
    )
    site_ids: list[int] | None = Field(
        None, description=f"Only these active sites; default the {SITES_TAG} / {SITE_TAG} tag, else all active sites."
    )


def run_info(context: dg.AssetExecutionContext, config: AIRunConfig, llm: LLMResource) -> RunInfo:
    tags = context.run.tags
    force = config.force or is_true(tags.get(FORCE_TAG))
    trigger = config.trigger or tags.get(TRIGGER_TAG) or DEFAULT_TRIGGER
    service = llm.service
    return RunInfo(
        provider=service.provider,
        trigger=trigger,
        force=force,
        dagster_run_id=context.run.run_id,
        # Read when the run starts, as the LLM resource's variables are.
        blocking_apps=GroundingSettings().blocking_apps,
        routes=service.routes(),
    )


def requested_sites(context: dg.AssetExecutionContext, config: App2Config) -> set[int] | None:
    """The sites a run is narrowed to (config, else tags), or None for every active site."""
    if config.site_ids is not None:
        return set(config.site_ids)
    tags = context.run.tags
    raw = tags.get(SITES_TAG) or tags.get(SITE_TAG)
    if not raw:
        return None
    try:
        return parse_site_ids(raw)
    except ValueError:
        raise dg.Failure(f"run tag {SITES_TAG}/{SITE_TAG} must be site ids separated by commas, got {raw!r}") from None
