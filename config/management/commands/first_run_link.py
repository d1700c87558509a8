"""`python manage.py first_run_link`: the link that makes the first account (`config.accounts`)."""

from django.core.management.base import BaseCommand

from config.accounts import sign_in_hint


class Command(BaseCommand):
    help = "Print the one-time link that creates the first account, while no account exists."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where people reach this Loupe."
        )

    def handle(self, *args, base_url: str, **options):
        self.stdout.write(sign_in_hint(base_url))
