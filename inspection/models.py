"""Stations, units and decisions (the line API issue adds them)."""
