"""The supervision dashboard: figures and time series over a station's (or every station's)
last hour, day or week, read with aggregate SQL from the append-only rows (units, predictions,
decision events, drift checks, alarms), plus the line API's latency from Redis histograms.

- `periods`: the three periods and their time buckets;
- `figures`: headline figures (rates with their intervals, queue, decisions, models, alarms);
- `series`: the same figures per time bucket, for the charts;
- `latency`: the recorder of the line's POST time and the histograms read back;
- `report`: the JSON the dashboard pages fetch; `api`, `pages`: the interfaces.
"""
