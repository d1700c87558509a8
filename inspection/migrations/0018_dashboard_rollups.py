"""The dashboard's rollups (`inspection.supervision.dashboard`): counts per station and per minute,
quarter-hour, hour and day, and the triggers that keep them exact.

Every unit, prediction and decision event written, changed or removed appends the minute (epoch
seconds / 60) whose counts it changes to `inspection_rolluptouch`, in the same transaction: the
unit's arrival minute (and a decision event's own minute). A touch is one small row in a table
with no unique key, so concurrent writers never wait on each other; the dashboard's refresh
counts those minutes again (docs/operations.md, "Dashboard rollups"). A unit's update touches
only when what is counted changes (not its claim, nor the decision copied onto it).

PostgreSQL: one trigger function per table, comparing the columns inside it (a trigger naming a
column, in `UPDATE OF` or `WHEN`, would block a later migration altering that column's type).
SQLite: a trigger per table and operation. SQLite drops a table's triggers when a migration
rebuilds the table (as most of its `AlterField`s do): a migration that alters these three
tables must create their triggers again (`TRIGGERS` below), which
`tests/inspection/supervision/test_dashboard_rollups.py` checks on both databases.
"""

import django.db.models.deletion
from django.db import migrations, models

TOUCHES = "inspection_rolluptouch"
# What a unit's counts depend on (its status and decision are read live, not counted).
UNIT_COUNTED = ("received_at", "station_id", "queue_reason", "automation_level", "deciding_model_id")
PREDICTION_COUNTED = ("unit_id", "model_version_id", "verdict")


def _pg_minute(column):
    return f"floor(extract(epoch FROM {column}) / 60)::bigint"


def _pg_row(record, columns):
    return "(" + ", ".join(f"{record}.{column}" for column in columns) + ")"


POSTGRESQL_CREATE = [
    f"""
    CREATE FUNCTION loupe_rollup_touch_unit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO {TOUCHES} (minute) VALUES ({_pg_minute("NEW.received_at")});
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO {TOUCHES} (minute) VALUES ({_pg_minute("OLD.received_at")});
        ELSIF {_pg_row("OLD", UNIT_COUNTED)} IS DISTINCT FROM {_pg_row("NEW", UNIT_COUNTED)} THEN
            INSERT INTO {TOUCHES} (minute)
            SELECT {_pg_minute("OLD.received_at")} UNION SELECT {_pg_minute("NEW.received_at")};
        END IF;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE FUNCTION loupe_rollup_touch_prediction() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO {TOUCHES} (minute)
            SELECT {_pg_minute("received_at")} FROM inspection_unit WHERE id = NEW.unit_id;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO {TOUCHES} (minute)
            SELECT {_pg_minute("received_at")} FROM inspection_unit WHERE id = OLD.unit_id;
        ELSIF {_pg_row("OLD", PREDICTION_COUNTED)} IS DISTINCT FROM {_pg_row("NEW", PREDICTION_COUNTED)} THEN
            INSERT INTO {TOUCHES} (minute)
            SELECT DISTINCT {_pg_minute("received_at")} FROM inspection_unit
            WHERE id IN (OLD.unit_id, NEW.unit_id);
        END IF;
        RETURN NULL;
    END $$
    """,
    # Decision events are append-only (0015 refuses UPDATE and DELETE first); a change would touch.
    f"""
    CREATE FUNCTION loupe_rollup_touch_decision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO {TOUCHES} (minute)
            SELECT {_pg_minute("NEW.created_at")}
            UNION SELECT {_pg_minute("received_at")} FROM inspection_unit WHERE id = NEW.unit_id;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO {TOUCHES} (minute)
            SELECT {_pg_minute("OLD.created_at")}
            UNION SELECT {_pg_minute("received_at")} FROM inspection_unit WHERE id = OLD.unit_id;
        END IF;
        RETURN NULL;
    END $$
    """,
    *(
        f"CREATE TRIGGER {table}_rollup_touch AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION loupe_rollup_touch_{name}()"
        for table, name in (
            ("inspection_unit", "unit"),
            ("inspection_prediction", "prediction"),
            ("inspection_decisionevent", "decision"),
        )
    ),
]
POSTGRESQL_DROP = [
    *(
        f"DROP TRIGGER IF EXISTS {table}_rollup_touch ON {table}"
        for table in ("inspection_unit", "inspection_prediction", "inspection_decisionevent")
    ),
    *(f"DROP FUNCTION IF EXISTS loupe_rollup_touch_{name}()" for name in ("unit", "prediction", "decision")),
]


def _sqlite_minute(column):
    # Django's text "YYYY-MM-DD HH:MM:SS[.ffffff]" without the fraction, which strftime would round
    # to the millisecond (as `periods.EpochBucket` reads it).
    return f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) / 60"


def _sqlite_changed(columns):
    return " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in columns)


def _unit_minutes(unit_ids):
    return f"SELECT {_sqlite_minute('received_at')} FROM inspection_unit WHERE id IN ({unit_ids})"


# (table, operation, condition or None, the minutes touched as a SELECT)
SQLITE_TRIGGERS = [
    ("inspection_unit", "INSERT", None, f"SELECT {_sqlite_minute('NEW.received_at')}"),
    ("inspection_unit", "DELETE", None, f"SELECT {_sqlite_minute('OLD.received_at')}"),
    (
        "inspection_unit",
        "UPDATE",
        _sqlite_changed(UNIT_COUNTED),
        f"SELECT {_sqlite_minute('OLD.received_at')} UNION SELECT {_sqlite_minute('NEW.received_at')}",
    ),
    ("inspection_prediction", "INSERT", None, _unit_minutes("NEW.unit_id")),
    ("inspection_prediction", "DELETE", None, _unit_minutes("OLD.unit_id")),
    (
        "inspection_prediction",
        "UPDATE",
        _sqlite_changed(PREDICTION_COUNTED),
        f"SELECT DISTINCT * FROM ({_unit_minutes('OLD.unit_id, NEW.unit_id')})",
    ),
    (
        "inspection_decisionevent",
        "INSERT",
        None,
        f"SELECT {_sqlite_minute('NEW.created_at')} UNION {_unit_minutes('NEW.unit_id')}",
    ),
    (
        "inspection_decisionevent",
        "DELETE",
        None,
        f"SELECT {_sqlite_minute('OLD.created_at')} UNION {_unit_minutes('OLD.unit_id')}",
    ),
    (
        "inspection_decisionevent",
        "UPDATE",
        None,
        f"SELECT {_sqlite_minute('OLD.created_at')} UNION SELECT {_sqlite_minute('NEW.created_at')} "
        f"UNION {_unit_minutes('OLD.unit_id, NEW.unit_id')}",
    ),
]
TRIGGERS = {
    "postgresql": [
        f"{table}_rollup_touch"
        for table in ("inspection_unit", "inspection_prediction", "inspection_decisionevent")
    ],
    "sqlite": [f"{table}_rollup_touch_{operation.lower()}" for table, operation, _, _ in SQLITE_TRIGGERS],
}
SQLITE_CREATE = [
    f"CREATE TRIGGER {table}_rollup_touch_{operation.lower()} AFTER {operation} ON {table} "
    + (f"WHEN {condition} " if condition else "")
    + f"BEGIN INSERT INTO {TOUCHES} (minute) {minutes}; END"
    for table, operation, condition, minutes in SQLITE_TRIGGERS
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS["sqlite"]]


def _per_vendor(statements):
    def run(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, ()):
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('inspection', '0017_access_changes'),
        ('models_registry', '0002_geometry'),
    ]

    operations = [
        migrations.CreateModel(
            name='RollupState',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ('counted_through', models.BigIntegerField(null=True)),
                ('refreshed_at', models.DateTimeField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name='RollupTouch',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('minute', models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name='CountsRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('resolution', models.PositiveIntegerField(choices=[(60, 'minute'), (900, 'quarter-hour'), (3600, 'hour'), (86400, 'day')])),
                ('start', models.BigIntegerField()),
                ('received', models.PositiveIntegerField(default=0)),
                ('automatic', models.PositiveIntegerField(default=0)),
                ('deferred', models.PositiveIntegerField(default=0)),
                ('entered_queue', models.PositiveIntegerField(default=0)),
                ('judged', models.PositiveIntegerField(default=0)),
                ('agreed', models.PositiveIntegerField(default=0)),
                ('audits', models.PositiveIntegerField(default=0)),
                ('audits_wrong', models.PositiveIntegerField(default=0)),
                ('audits_missed', models.PositiveIntegerField(default=0)),
                ('decided_by_model', models.PositiveIntegerField(default=0)),
                ('decided_by_human', models.PositiveIntegerField(default=0)),
                ('left_queue', models.PositiveIntegerField(default=0)),
                ('station', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='inspection.station')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('resolution', 'start', 'station'), name='counts_rollup_unique')],
            },
        ),
        migrations.CreateModel(
            name='VersionRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('resolution', models.PositiveIntegerField(choices=[(60, 'minute'), (900, 'quarter-hour'), (3600, 'hour'), (86400, 'day')])),
                ('start', models.BigIntegerField()),
                ('predicted', models.PositiveIntegerField(default=0)),
                ('decided', models.PositiveIntegerField(default=0)),
                ('audits_judged', models.PositiveIntegerField(default=0)),
                ('audits_agreed', models.PositiveIntegerField(default=0)),
                ('model_version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='models_registry.modelversion')),
                ('station', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='inspection.station')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('resolution', 'start', 'station', 'model_version'), name='version_rollup_unique')],
            },
        ),
        migrations.RunPython(
            _per_vendor({"postgresql": POSTGRESQL_CREATE, "sqlite": SQLITE_CREATE}),
            _per_vendor({"postgresql": POSTGRESQL_DROP, "sqlite": SQLITE_DROP}),
        ),
    ]
