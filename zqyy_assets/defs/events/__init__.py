"""Events and automation: the business-event inbox, the sensors that turn it into runs, the
DWS completion sensor, run status and failure alerts, and the daily app2 prewarm.

Kept free of imports so the API and the CLI can use ``inbox``/``ingest``/``live_traffic``
without loading Dagster; the Dagster objects are listed in ``automation.py``.
"""
