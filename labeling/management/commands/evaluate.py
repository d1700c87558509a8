"""`manage.py evaluate --model M --dataset NAME`: metrics of a registered version on a split."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Split
from labeling.selectors import UnknownDataset, dataset_get, dataset_samples
from models_registry.selectors import UnknownModel, model_version_get
from models_registry.services import model_version_evaluate


class Command(BaseCommand):
    help = "Evaluate a registered model version on a data set's split (the frozen test split by default)."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="NAME, NAME:VERSION or models:/NAME/VERSION")
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", choices=[*Split.values, "all"], default=Split.TEST)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            version = model_version_get(reference=options["model"])
            dataset = dataset_get(name=options["dataset"])
        except (UnknownModel, UnknownDataset) as error:
            raise CommandError(str(error)) from None
        split = None if options["split"] == "all" else options["split"]
        samples = dataset_samples(dataset=dataset, split=split)
        if not any(s.defective is not None for s in samples):
            where = (
                "any split" if split is None else f"the {split} split (run `train` first to assign splits)"
            )
            raise CommandError(f"dataset {dataset.name!r} has no labelled images in {where}")
        missing = set(version.classes) ^ set(dataset.classes)
        if set(dataset.classes) - set(version.classes):
            self.stderr.write(f"note: classes the model does not know count as misses: {sorted(missing)}")
        metrics = model_version_evaluate(model_version=version, samples=samples)
        report = {
            "model": f"{version.name}:{version.version}",
            "dataset": dataset.name,
            "split": options["split"],
            **metrics,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(json.dumps(report, indent=2))
