"""Writes of the inspection app (see the modules: units, decisions, stations, webhooks, predictions)."""
