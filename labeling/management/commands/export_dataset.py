"""`manage.py export_dataset --dataset NAME --format FORMAT --out DIR [--split S]
[--predictions-model NAME:VERSION] [--overwrite] [--json]`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.formats.registry import EXPORT_FORMATS as FORMATS
from labeling.formats.registry import PREDICTIONS_FORMAT
from labeling.formats.services import DatasetExportError, dataset_export, model_version_regions
from labeling.models import Split
from labeling.selectors import UnknownDataset, dataset_get
from models_registry.selectors import UnknownModel, model_version_get


class Command(BaseCommand):
    help = (
        "Export a data set (or one split) as COCO, YOLO, Pascal VOC or Label Studio JSON, in the layout "
        "import_dataset reads back. Image files are copied unchanged. Images a format cannot express "
        "truthfully (unlabeled, or a defect class without a location, for the detection formats) are "
        "left out and counted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", required=True, help="the data set to export")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="format")
        parser.add_argument("--out", required=True, help="the folder to write (new or empty)")
        parser.add_argument("--split", choices=Split.values, help="export only this split")
        parser.add_argument(
            "--predictions-model",
            help=f"NAME:VERSION of a registered model whose predictions fill the tasks' "
            f"`predictions` ({PREDICTIONS_FORMAT} only)",
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace DIR if it holds a previous export"
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the summary as one JSON object"
        )

    def handle(
        self,
        *args,
        dataset: str,
        format: str,
        out: str,
        split: str | None,
        predictions_model: str | None,
        overwrite: bool,
        as_json: bool,
        **options,
    ) -> None:
        if format not in FORMATS:
            raise CommandError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
        if predictions_model and format != PREDICTIONS_FORMAT:
            raise CommandError(f"--predictions-model needs --format {PREDICTIONS_FORMAT}")
        try:
            found = dataset_get(name=dataset)
            predictions_for, model_name = None, ""
            if predictions_model:
                version = model_version_get(reference=predictions_model)
                predictions_for = model_version_regions(model_version=version)
                model_name = f"{version.name}:{version.version}"
            summary = dataset_export(
                dataset=found,
                format=format,
                out=out,
                split=split,
                predictions_for=predictions_for,
                predictions_model_version=model_name,
                overwrite=overwrite,
            )
        except (UnknownDataset, UnknownModel, DatasetExportError) as error:
            raise CommandError(str(error)) from error
        if as_json:
            self.stdout.write(json.dumps({**summary.as_dict(), "notes": summary.notes()}, sort_keys=True))
            return
        for note in summary.notes():
            self.stdout.write(f"Note: {note}")
        self.stdout.write(summary.line())
