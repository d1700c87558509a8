"""Data set snapshots: immutable versions with a frozen test split."""

from io import StringIO

import pytest
from django.core.management import call_command

from labeling.models import Annotation, AnnotationKind, Dataset, DatasetSnapshot, Split
from labeling.selectors import dataset_samples
from labeling.snapshots import EmptySnapshot, dataset_snapshot_create, snapshot_samples
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.writing import write_dataset

pytestmark = pytest.mark.django_db

SMALL = SyntheticConfig(width=96, height=54)


def imported(tmp_path, name: str, count: int, seed: int) -> Dataset:
    folder = tmp_path / f"units-{seed}"
    write_dataset(folder, count, seed=seed, config=SMALL, format="masks")
    call_command("import_dataset", str(folder), name=name, format="masks", stdout=StringIO())
    return Dataset.objects.get(name=name)


def test_a_snapshot_records_items_splits_and_annotation_rows(tmp_path):
    dataset = imported(tmp_path, "screens", 40, seed=1)
    snapshot = dataset_snapshot_create(dataset=dataset)
    assert snapshot.version == 1 and snapshot.classes == dataset.classes
    assert len(snapshot.manifest) == 40
    assert snapshot.counts[Split.TEST] > 0 and snapshot.counts[Split.TRAIN] > 0
    # its samples are the data set's, split by split
    for split in Split.values:
        assert snapshot_samples(snapshot=snapshot, split=split) == dataset_samples(
            dataset=dataset, split=split
        )


def test_an_unchanged_data_set_gives_the_same_snapshot(tmp_path):
    dataset = imported(tmp_path, "screens", 20, seed=1)
    first = dataset_snapshot_create(dataset=dataset)
    assert dataset_snapshot_create(dataset=dataset) == first
    assert DatasetSnapshot.objects.count() == 1


def test_later_labels_make_a_new_version_and_never_change_an_old_one(tmp_path):
    dataset = imported(tmp_path, "screens", 30, seed=1)
    first = dataset_snapshot_create(dataset=dataset)
    before = snapshot_samples(snapshot=first)
    test_items = {entry["item"] for entry in first.manifest if entry["split"] == Split.TEST}
    # when a label is added to an existing item and new units arrive
    item = dataset.items.order_by("id").first()
    Annotation.objects.create(item=item, kind=AnnotationKind.IMAGE_CLASS, label="scratch", source="review")
    folder = tmp_path / "more"
    write_dataset(folder, 15, seed=9, config=SMALL, format="masks")
    call_command("import_dataset", str(folder), name="screens", format="masks", stdout=StringIO())
    second = dataset_snapshot_create(dataset=dataset)
    # then a second version exists, the first reads exactly as before
    assert second.version == 2 and len(second.manifest) == 45
    assert snapshot_samples(snapshot=first) == before
    # and the test split is the same units: new units only go to train or validation
    assert {entry["item"] for entry in second.manifest if entry["split"] == Split.TEST} == test_items


def test_a_snapshot_cannot_be_changed(tmp_path):
    snapshot = dataset_snapshot_create(dataset=imported(tmp_path, "screens", 10, seed=2))
    snapshot.manifest = []
    with pytest.raises(ValueError, match="immutable"):
        snapshot.save()


def test_a_data_set_without_labels_has_no_snapshot():
    with pytest.raises(EmptySnapshot, match="no labelled item"):
        dataset_snapshot_create(dataset=Dataset.objects.create(name="empty"))
