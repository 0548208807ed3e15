"""Events: the webhook receiver and the durable inbox it commits to (issue #20).

No Dagster here: the receiver runs as its own process and must start in well under a
second; the sensors in ``pipelines/defs/events/`` read the inbox.
"""
