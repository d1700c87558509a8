"""The supervision dashboard: figures and time series over a station's (or every station's)
last hour, day or week, counted from the append-only rows (units, predictions, decision events,
drift checks, alarms), plus the line API's latency from Redis histograms.

- `periods`: the three periods and their time buckets;
- `figures`: the counts and how the rows give them (aggregate SQL per station and bucket), the
  headline figures (rates with their intervals, queue, decisions);
- `models`, `rollups`: those counts kept per minute, quarter-hour, hour and day, exact as rows
  change (touch triggers, a refresh by Celery beat, `manage.py dashboard_rollups`);
- `tallies`: a window read from the rollups and the rows they do not hold, in one snapshot;
- `series`: the same figures per time bucket, for the charts; `in_play`: models and alarms;
- `latency`: the recorder of the line's POST time and the histograms read back;
- `report`: the JSON the dashboard pages fetch; `api`, `pages`: the interfaces.
"""
