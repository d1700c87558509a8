"""The demo set-up `make run` needs: generated units and a starter model trained on them.

Done once; later starts find the registered model and return at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from inspection.enums import AutomationLevel
from inspection.models import Station
from inspection.services.stations import station_create
from labeling.models import Dataset, Split
from labeling.selectors import dataset_samples
from labeling.services import dataset_import
from labeling.splits import dataset_split_assign
from labeling.station_data import station_dataset_link
from models_registry.models import ModelVersion
from models_registry.services import model_version_train

logger = logging.getLogger(__name__)

DEMO_DATASET = "demo-screens"
DEMO_MODEL = "loupe-demo"
DEMO_STATION = "demo-line"


def demo_model_ensure(
    *, count: int = 320, epochs: int = 6, seed: int = 7, say: Callable[[str], None] = logger.info
) -> ModelVersion:
    """Return the demo's starter model, generating data and training it the first time."""
    existing = ModelVersion.objects.filter(name=DEMO_MODEL).first()
    if existing is not None:
        say(f"starter model ready: {existing.name} v{existing.version}")
        return existing
    if not Dataset.objects.filter(name=DEMO_DATASET).exists():
        from models_registry.ml.synthetic.config import SyntheticConfig
        from models_registry.ml.synthetic.writing import write_dataset

        folder = Path(settings.LOUPE_DATA_DIR) / "demo" / "synthetic"
        say(f"generating {count} synthetic phone-screen units into {folder}")
        write_dataset(folder, count, seed=seed, config=SyntheticConfig(), format="masks", overwrite=True)
        summary = dataset_import(path=folder, name=DEMO_DATASET, format="masks")
        say(f"imported {summary.images_added} units into data set {DEMO_DATASET!r}")
    dataset = Dataset.objects.get(name=DEMO_DATASET)
    dataset_split_assign(dataset=dataset)
    splits = {split: dataset_samples(dataset=dataset, split=split) for split in Split.values}
    say(f"training the starter model ({epochs} epochs on {len(splits['train'])} units; a few minutes, once)")
    result = model_version_train(
        model_name=DEMO_MODEL,
        dataset_name=DEMO_DATASET,
        classes=dataset.classes,
        train=splits[Split.TRAIN],
        validation=splits[Split.VALIDATION],
        test=splits[Split.TEST],
        epochs=epochs,
        seed=seed,
        on_epoch=lambda r: say(
            f"epoch {r.epoch}/{r.epochs}: loss {r.train_loss:.3f}, ETA {r.eta_seconds:.0f}s"
        ),
    )
    version = result.model_version
    say(f"starter model registered: {version.name} v{version.version} ({version.architecture})")
    return version


def demo_station_ensure(*, model_version: ModelVersion, say: Callable[[str], None] = logger.info) -> Station:
    """The demo's station, at partial automation with the starter model as champion."""
    station = Station.objects.filter(slug=DEMO_STATION).first()
    if station is None:
        station = station_create(
            slug=DEMO_STATION,
            name="Demo line: phone screens",
            line="demo",
            level=AutomationLevel.PARTIAL,
            champion=model_version,
        )
        say(f"demo station {station.slug} created (partial automation, champion {model_version})")
    else:
        say(f"demo station ready: {station.slug} (level {station.automation_level})")
    demo_dataset = Dataset.objects.filter(name=DEMO_DATASET, station__isnull=True).first()
    if demo_dataset is not None and not Dataset.objects.filter(station=station).exists():
        # The starter model's data set becomes the station's: verdicts and labels from the demo
        # line add to it, and retraining keeps its frozen test split.
        station_dataset_link(station=station, dataset=demo_dataset)
        say(f"data set {demo_dataset.name} now collects the labels of {station.slug}")
    return station
