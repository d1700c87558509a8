"""`manage.py create_station SLUG [--level L] [--model NAME[:VERSION]]`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inspection.enums import AutomationLevel
from inspection.services.stations import station_create
from models_registry.selectors import UnknownModel, model_version_active, model_version_get


class Command(BaseCommand):
    help = "Create an inspection station (its champion model defaults to the active model)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="short name used in URLs, e.g. screens-line-1")
        parser.add_argument("--level", default=AutomationLevel.ASSISTED, choices=AutomationLevel.values)
        parser.add_argument("--model", help="champion: NAME, NAME:VERSION or models:/NAME/VERSION")
        parser.add_argument("--name", default="", help="display name")
        parser.add_argument("--line", default="", help="the production line it belongs to")
        parser.add_argument("--target-escape-rate", type=float, default=0.01)
        parser.add_argument("--audit-share", type=float, default=0.02)

    def handle(self, *args, **options):
        try:
            champion = (
                model_version_get(reference=options["model"]) if options["model"] else model_version_active()
            )
        except UnknownModel as error:
            raise CommandError(str(error)) from error
        try:
            station = station_create(
                slug=options["slug"],
                name=options["name"],
                level=options["level"],
                champion=champion,
                line=options["line"],
                target_escape_rate=options["target_escape_rate"],
                audit_share=options["audit_share"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        model = str(champion) if champion else "none (every unit goes to a human until one is set)"
        self.stdout.write(
            f"station {station.slug} created: level {station.automation_level}, champion {model}"
        )
