"""`manage.py create_device_key SLUG [--name NAME]`: prints the new key on its last line."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inspection.models import Station
from inspection.services.stations import device_key_create


class Command(BaseCommand):
    help = "Create a device key for a station's line computer. The key is shown once, on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the station")
        parser.add_argument("--name", default="line computer", help="which machine uses the key")

    def handle(self, *args, **options):
        station = Station.objects.filter(slug=options["slug"]).first()
        if station is None:
            known = ", ".join(Station.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"no station {options['slug']!r} (stations: {known})")
        try:
            row, key = device_key_create(station=station, name=options["name"], note="command line")
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stderr.write(
            f"device key {row.prefix} for station {station.slug} ({row.name}); it is stored hashed and "
            "shown only now. Send it as 'Authorization: Api-Key <key>'. Revoke it in the admin."
        )
        self.stdout.write(key)
