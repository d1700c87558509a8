"""`manage.py ensure_demo`: generate demo units and train the starter model if none exists."""

from django.core.management.base import BaseCommand

from labeling.demo import demo_model_ensure


class Command(BaseCommand):
    help = "Make sure the demo's starter model exists (generated data, trained once, then cached)."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=320, help="generated units, the first time")
        parser.add_argument("--epochs", type=int, default=6)

    def handle(self, *args, **options):
        demo_model_ensure(count=options["count"], epochs=options["epochs"], say=self.stdout.write)
