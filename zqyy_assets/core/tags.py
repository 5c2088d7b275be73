"""Run tags: what a run is for, read by the assets, the sensors and the API alike.

Tags under ``zqyy/`` are ours; the ``dagster/`` ones are Dagster's own names for a
partition-range run and a run key, which the API sets over GraphQL without importing Dagster.
"""

from __future__ import annotations

FORCE_TAG = "zqyy/force"  # "true": ask again even when the input hash is unchanged
TRIGGER_TAG = "zqyy/trigger"  # what started the run: an event type, "schedule", "manual", "admin"...
SITE_TAG = "zqyy/site_id"
SITES_TAG = "zqyy/site_ids"  # app2 prewarm: the comma-separated sites to answer for
SHARD_TAG = "zqyy/shard"  # app2 prewarm: which shard of the day's sites the run is, "2/5" (core/prewarm_shards.py)
EVENT_ID_TAG = "zqyy/event_id"  # the first (often only) event the run answers
EVENT_COUNT_TAG = "zqyy/event_count"
PARTITION_KEYS_TAG = "zqyy/partition_keys"  # a range run: its keys, comma-separated, in order
SPLIT_FROM_TAG = "zqyy/split_from"  # a run that replaces its event's share of a failed range run
BATCH_ID_TAG = "zqyy/batch_id"  # a run started by an admin batch
NOTE_TAG = "zqyy/note"  # run/app6_note: the note App6 analyses, as JSON (core/prompts/member.py GivenNote)

DEFAULT_TRIGGER = "manual"

# Dagster's own tags.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
WILL_RETRY_TAG = "dagster/will_retry"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # seconds; the daemon's run monitoring fails a run past it

# The metadata key under which a member step's Failure names the partition keys that failed.
FAILED_PARTITIONS_METADATA = "failed_partitions"


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")
