"""Append-only for real: on PostgreSQL, triggers refuse UPDATE and DELETE of the record tables.

Decision events, station changes and unit comments are never changed nor removed, whoever asks
(`QuerySet.update()`, `delete()`, a cascade, raw SQL from the application's role). An alarm stays
open to its handling (acknowledge, clear, the notices sent), but a cleared alarm is history: only
its `notified` record may still be written, and no alarm is ever deleted. TRUNCATE is not a row
operation: tests that flush the database still do. SQLite (the embedded single-machine database)
has no such guard; the models' own checks stand there alone. See docs/operations.md.
"""

import django.utils.timezone
from django.db import migrations, models

APPEND_ONLY = ("inspection_decisionevent", "inspection_stationchange", "inspection_unitcomment")

CREATE = [
    """
    CREATE FUNCTION loupe_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% rows are append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE FUNCTION loupe_guard_alarm_history() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'alarms are history: DELETE of alarm % refused', OLD.id
                USING ERRCODE = 'restrict_violation';
        END IF;
        IF OLD.status = 'cleared'
           AND (to_jsonb(NEW) - 'notified') IS DISTINCT FROM (to_jsonb(OLD) - 'notified') THEN
            RAISE EXCEPTION 'alarm % is cleared: its record cannot be changed', OLD.id
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION loupe_refuse_change()"
        for table in APPEND_ONLY
    ),
    "CREATE TRIGGER inspection_alarm_history BEFORE UPDATE OR DELETE ON inspection_alarm "
    "FOR EACH ROW EXECUTE FUNCTION loupe_guard_alarm_history()",
]
DROP = [
    "DROP TRIGGER IF EXISTS inspection_alarm_history ON inspection_alarm",
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in APPEND_ONLY),
    "DROP FUNCTION IF EXISTS loupe_guard_alarm_history()",
    "DROP FUNCTION IF EXISTS loupe_refuse_change()",
]


def _on_postgresql(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("inspection", "0014_station_max_image_pixels")]

    operations = [
        # Set once, at insert (a back-dated row is inserted with its time, never updated to it).
        migrations.AlterField(
            model_name="decisionevent",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
