"""`manage.py train --dataset NAME`: train, evaluate and register a model version."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Split
from labeling.selectors import UnknownDataset, dataset_get, dataset_samples
from labeling.splits import dataset_split_assign
from models_registry.ml.geometry import KINDS as GEOMETRY_KINDS
from models_registry.ml.geometry import TILES, GeometryRequest
from models_registry.ml.models.backbone import BACKBONES, BackboneWeightsUnavailable
from models_registry.ml.pipeline import geometry_for
from models_registry.services import model_version_train


class Command(BaseCommand):
    help = "Train a defect model on a data set, log it to MLflow and register a new version."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="data set name (see import_dataset)")
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--model-name", help="registered model name (default: loupe-<dataset>)")
        parser.add_argument(
            "--geometry",
            choices=["auto", *GEOMETRY_KINDS],
            default="auto",
            help="how the model looks at a frame: the whole frame with its aspect ratio kept (aspect), "
            "overlapping tiles at or near the camera's resolution (tiles), or squashed square (squash, "
            "as models before geometries did); auto chooses from the data and says why",
        )
        parser.add_argument(
            "--input-size",
            type=int,
            help="the network input's long side for aspect/squash, or the tile side (a multiple of 32)",
        )
        parser.add_argument("--tile", type=int, help="tile side in pixels (a multiple of 32): implies tiles")
        parser.add_argument(
            "--tile-scale", type=float, help="tiles: network pixels per camera pixel (1 = native, 0.5 = half)"
        )
        parser.add_argument(
            "--tile-overlap", type=int, help="tiles: pixels shared by neighbours (default 32)"
        )
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--backbone", choices=BACKBONES, default="efficientnet_lite0")
        parser.add_argument(
            "--no-pretrained", action="store_true", help="random initial weights (for comparison)"
        )
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object and nothing else on stdout"
        )

    def handle(self, *args, **options):
        if options["epochs"] < 1:
            raise CommandError("--epochs must be at least 1")
        for name in ("input_size", "tile"):
            if options[name] is not None and (options[name] < 64 or options[name] % 32):
                raise CommandError(f"--{name.replace('_', '-')} must be a multiple of 32, at least 64")
        request = _geometry_request(options)
        if options["batch_size"] < 2:
            raise CommandError("--batch-size must be at least 2")
        try:
            dataset = dataset_get(name=options["dataset"])
        except UnknownDataset as error:
            raise CommandError(str(error)) from None
        counts = dataset_split_assign(dataset=dataset)
        splits = {
            split: [s for s in dataset_samples(dataset=dataset, split=split) if s.defective is not None]
            for split in Split.values
        }
        if len(splits[Split.TRAIN]) < 2:
            raise CommandError(
                f"dataset {dataset.name!r} has {len(splits[Split.TRAIN])} labelled training images; need 2+"
            )
        log = self.stderr._out  # the stream itself: the progress bar draws on it
        newly = f"; {counts.newly_assigned} newly assigned" if counts.newly_assigned else ""
        print(
            f"Training on {dataset.name}: {len(splits['train'])} train,"
            f" {len(splits['validation'])} validation, {len(splits['test'])} test (frozen){newly}",
            file=log,
        )
        try:
            choice = geometry_for(request, splits[Split.TRAIN])
        except ValueError as error:  # e.g. a tile overlap that does not fit the tile
            raise CommandError(str(error)) from None
        print(f"Geometry: {choice.geometry.slug}; {choice.reason}", file=log)
        progress = _ProgressBar(log)
        try:
            result = self._train(dataset, splits, options, progress, choice)
        except BackboneWeightsUnavailable as error:
            raise CommandError(str(error)) from None
        finally:
            progress.close()
        version = result.model_version
        test = result.test_metrics or {}
        summary = {
            "model": f"{version.name}:{version.version}",
            "model_uri": version.uri,
            "name": version.name,
            "version": version.version,
            "mlflow_run_id": version.mlflow_run_id,
            "dataset": dataset.name,
            "geometry": version.geometry,
            "geometry_reason": choice.reason,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
            "test": {k: v for k, v in test.items() if k not in ("curves", "per_class")},
            "risk_control": version.risk_control,
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(
            self.style.SUCCESS(f"Registered {version.name} version {version.version} ({version.uri})")
        )
        self.stdout.write(f"MLflow run: {version.mlflow_run_id}")
        for key in ("image_accuracy", "image_auroc", "ece", "box_map50", "pixel_auroc", "coverage_at_error"):
            if key in summary["test"]:
                self.stdout.write(f"  test {key}: {summary['test'][key]}")

    @staticmethod
    def _train(dataset, splits, options, progress, geometry):
        return model_version_train(
            model_name=options["model_name"] or f"loupe-{dataset.name}",
            dataset_name=dataset.name,
            classes=dataset.classes,
            train=splits[Split.TRAIN],
            validation=splits[Split.VALIDATION],
            test=splits[Split.TEST],
            epochs=options["epochs"],
            seed=options["seed"],
            geometry=geometry,
            backbone=options["backbone"],
            pretrained=not options["no_pretrained"],
            batch_size=options["batch_size"],
            on_step=progress.step,
            on_epoch=progress.epoch,
        )


def _geometry_request(options: dict) -> GeometryRequest:
    kind = options["geometry"]
    if (
        options["tile"] is not None
        or options["tile_scale"] is not None
        or options["tile_overlap"] is not None
    ):
        if kind not in ("auto", TILES):
            raise CommandError(
                f"--tile, --tile-scale and --tile-overlap are for tiles, not --geometry {kind}"
            )
        kind = TILES
    try:
        return GeometryRequest(
            kind=kind,
            input_size=options["tile"] or options["input_size"],
            tile_scale=options["tile_scale"],
            tile_overlap=options["tile_overlap"],
        )
    except ValueError as error:
        raise CommandError(str(error)) from None


class _ProgressBar:
    """A tqdm bar over training steps, with the epoch's losses and ETA in its postfix."""

    def __init__(self, stream):
        self.stream = stream
        self.bar = None

    def step(self, step: int, total: int, loss: float) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, file=self.stream, unit="step", desc="training", dynamic_ncols=True)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def epoch(self, report) -> None:
        message = (
            f"epoch {report.epoch}/{report.epochs}: train loss {report.train_loss:.4f}"
            + (
                f", validation loss {report.validation_loss:.4f}"
                if report.validation_loss is not None
                else ""
            )
            + f", {report.seconds:.0f}s, ETA {report.eta_seconds:.0f}s"
        )
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
