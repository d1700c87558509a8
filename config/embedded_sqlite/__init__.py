"""Django's SQLite backend for the embedded database, with WAL, durable commits and writers queued
on a lock file (ENGINE "config.embedded_sqlite"; see `base.py` and docs/operations.md, "The
embedded database under load")."""
