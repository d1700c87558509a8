"""The units\x27 history: search, the units and unit pages, comments, the CSV export."""
