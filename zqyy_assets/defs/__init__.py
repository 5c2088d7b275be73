"""Dagster definitions by domain; ``zqyy_assets/definitions.py`` gathers them."""

import warnings

import dagster as dg

# Dagster 1.13 marks `backfill_policy` beta; the single-run ranges it gives are what the DWS
# backfill, app2's prewarm and the batched member runs rest on (Dagster is pinned, the behaviour
# tested here), so the warning would only repeat in every run log.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
