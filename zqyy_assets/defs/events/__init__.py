"""Events and automation: the sensors that turn the business-event inbox (``core/inbox.py``)
into runs, the DWS completion sensor, run status and failure alerts, and the daily app2
prewarm. ``definitions.py`` gathers them."""
