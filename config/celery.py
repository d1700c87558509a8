"""The Celery application: tasks in `workers.tasks`, the beat schedule and routes in
`workers.schedule`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])

from workers.schedule import BEAT_SCHEDULE  # noqa: E402  (after the settings module is named)

app.conf.beat_schedule = BEAT_SCHEDULE
app.conf.task_routes = ("workers.schedule.task_route",)
