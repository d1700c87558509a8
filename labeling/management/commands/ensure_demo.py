"""`manage.py ensure_demo`: generate demo units and train the starter model if none exists."""

from django.core.management.base import BaseCommand

from labeling.demo import demo_model_ensure, demo_station_ensure


class Command(BaseCommand):
    help = "Make sure the demo's starter model (generated data, trained once, then cached) and station exist."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=320, help="generated units, the first time")
        parser.add_argument("--epochs", type=int, default=6)

    def handle(self, *args, **options):
        say = self.stdout.write
        model_version = demo_model_ensure(count=options["count"], epochs=options["epochs"], say=say)
        demo_station_ensure(model_version=model_version, say=say)
