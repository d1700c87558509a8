"""A small slice of the real NEU-DET and Magnetic-tile sets, when `../shared/datasets` is there."""

import shutil
from pathlib import Path

import pytest

from labeling.models import Annotation, Dataset, DatasetItem
from tests.labeling.formats.factories import import_dataset

DATASETS = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not (DATASETS / "neu-det").is_dir() or not (DATASETS / "magnetic-tile").is_dir(),
        reason=f"real data sets not found at {DATASETS} (they are not shipped with the project)",
    ),
]


def copy_neu_det_slice(target: Path, classes=("crazing", "scratches"), per_class=3) -> None:
    source = DATASETS / "neu-det"
    for class_name in classes:
        for number in range(1, per_class + 1):
            stem = f"{class_name}_{number}"
            (target / "IMAGES").mkdir(parents=True, exist_ok=True)
            (target / "ANNOTATIONS").mkdir(parents=True, exist_ok=True)
            shutil.copy(source / "IMAGES" / f"{stem}.jpg", target / "IMAGES")
            shutil.copy(source / "ANNOTATIONS" / f"{stem}.xml", target / "ANNOTATIONS")


def copy_magnetic_tile_slice(target: Path, classes=("MT_Crack", "MT_Free"), per_class=3) -> None:
    for class_name in classes:
        images = sorted((DATASETS / "magnetic-tile" / class_name / "Imgs").glob("*.jpg"))[:per_class]
        (target / class_name / "Imgs").mkdir(parents=True)
        for image in images:
            shutil.copy(image, target / class_name / "Imgs")
            shutil.copy(image.with_suffix(".png"), target / class_name / "Imgs")


def test_neu_det_slice(tmp_path):
    copy_neu_det_slice(tmp_path / "neu")

    import_dataset(tmp_path / "neu", name="neu-det", format="voc")

    assert Dataset.objects.get(name="neu-det").classes == ["crazing", "scratches"]
    assert DatasetItem.objects.count() == 6
    boxes = Annotation.objects.filter(kind="box")
    assert boxes.count() >= 6
    assert set(boxes.values_list("label", flat=True)) == {"crazing", "scratches"}
    for box in boxes:
        assert box.geometry["x"] + box.geometry["width"] <= 200
        assert box.geometry["y"] + box.geometry["height"] <= 200


def test_magnetic_tile_slice(tmp_path):
    copy_magnetic_tile_slice(tmp_path / "tiles")

    import_dataset(tmp_path / "tiles", name="magnetic-tile", format="masks")

    assert Dataset.objects.get(name="magnetic-tile").classes == ["MT_Crack"]
    assert DatasetItem.objects.count() == 6
    assert Annotation.objects.filter(kind="class", label="MT_Crack").count() == 3
    assert Annotation.objects.filter(kind="mask", label="MT_Crack").count() == 3
    assert Annotation.objects.filter(kind="no_defect").count() == 3
