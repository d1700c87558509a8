"""Supervision: drift-check records, alarms and the dashboard."""
