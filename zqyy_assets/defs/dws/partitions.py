import dagster as dg

# Business dates. The demo venue's year starts inside this range; end_offset=1 includes the
# current (still open) business day so live traffic shows up before the day closes.
DWS_START_DATE = "2025-01-01"

business_date_partitions = dg.DailyPartitionsDefinition(
    start_date=DWS_START_DATE, timezone="Asia/Shanghai", end_offset=1
)
