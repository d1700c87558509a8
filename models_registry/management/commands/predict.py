"""`manage.py predict --model M IMAGE...`: what the model says about images on disk."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from PIL import UnidentifiedImageError

from models_registry.selectors import UnknownModel, model_version_get
from models_registry.services import predictor_get


class Command(BaseCommand):
    help = (
        "Print the model's prediction (one JSON object per line) for each image, with regions in the "
        "image's own pixels; a frame the model cannot judge (the frame check) says why instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("images", nargs="+", help="image files")
        parser.add_argument("--model", required=True, help="NAME, NAME:VERSION or models:/NAME/VERSION")
        parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx")

    def handle(self, *args, **options):
        try:
            version = model_version_get(reference=options["model"])
        except UnknownModel as error:
            raise CommandError(str(error)) from None
        predictor = predictor_get(model_version=version, backend=options["backend"])
        failures = 0
        for name in options["images"]:
            path = Path(name)
            try:
                problem, prediction = predictor.check_and_predict(path)
            except FileNotFoundError:
                self.stderr.write(f"{name}: no such file")
                failures += 1
                continue
            except (UnidentifiedImageError, OSError) as error:
                self.stderr.write(f"{name}: not a readable image ({error})")
                failures += 1
                continue
            if problem is not None:
                # What the line API does with such a frame: a person judges it, never the model.
                self.stdout.write(
                    json.dumps({"image": name, "frame_check": problem.code, "detail": problem.message})
                )
                continue
            self.stdout.write(json.dumps({"image": name, **prediction.as_dict()}))
        if failures:
            raise CommandError(f"{failures} of {len(options['images'])} images could not be read")
