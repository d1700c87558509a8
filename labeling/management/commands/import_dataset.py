"""`manage.py import_dataset PATH --name NAME --format FORMAT [--skip-bad] [--json]`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.formats.registry import IMPORT_FORMATS as FORMATS
from labeling.services import DatasetFormatError, DatasetImportError, ImportSummary, dataset_import


class Command(BaseCommand):
    help = (
        "Import a labelled image set (Pascal VOC, COCO, YOLO, mask folders, class folders or a Label "
        "Studio export) into a data set. Every file is validated first; without --skip-bad any bad "
        "file aborts the import and nothing is written."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the data set's folder, or its JSON file for coco/labelstudio")
        parser.add_argument("--name", required=True, help="the data set to import into (created if new)")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="format")
        parser.add_argument("--skip-bad", action="store_true", help="skip bad files and import the rest")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the summary as one JSON object"
        )

    def handle(
        self, *args, path: str, name: str, format: str, skip_bad: bool, as_json: bool, **options
    ) -> None:
        if format not in FORMATS:
            raise CommandError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
        try:
            summary = dataset_import(path=path, name=name, format=format, skip_bad=skip_bad)
        except (DatasetImportError, DatasetFormatError) as error:
            raise CommandError(str(error)) from error
        if as_json:
            self.stdout.write(json.dumps(summary.as_dict(), sort_keys=True))
        else:
            self.stdout.write(_report(summary))


def _report(summary: ImportSummary) -> str:
    kinds = ", ".join(f"{kind} {count}" for kind, count in summary.annotations_by_kind.items()) or "none"
    lines = [f"Bad file skipped: {bad}" for bad in summary.bad_files]
    lines += [f"Note: {warning}" for warning in summary.warnings]
    state = "created" if summary.dataset_created else "existing"
    lines += [
        f"Data set '{summary.dataset}' ({state}, {summary.format})",
        f"  images added: {summary.images_added} ({summary.images_stored} newly stored)",
        f"  images already present: {summary.images_already_present}",
        f"  duplicate images skipped: {summary.duplicates_skipped}",
        f"  annotations added: {kinds}",
        f"  classes: {', '.join(summary.classes) or 'none'}"
        + (f" (new: {', '.join(summary.new_classes)})" if summary.new_classes else ""),
        f"  bad files skipped: {len(summary.bad_files)}",
    ]
    return "\n".join(lines)
