"""Image classification folders: a folder's name is its images' class."""

import pytest

from labeling.models import Dataset
from tests.labeling.formats.factories import (
    annotations_of,
    import_dataset,
    write_image,
)

pytestmark = pytest.mark.django_db


def test_folders_format_gives_image_level_classes(tmp_path):
    root = tmp_path / "cls"
    write_image(root / "scratch" / "a.jpg", seed=1)
    write_image(root / "scratch" / "batch2" / "b.jpg", seed=2)
    write_image(root / "OK" / "c.jpg", seed=3)
    write_image(root / "defect-free" / "d.jpg", seed=4)

    import_dataset(root, name="cls", format="folders")

    assert Dataset.objects.get(name="cls").classes == ["scratch"]
    assert annotations_of("cls", "scratch/a.jpg") == [("class", "scratch")]
    assert annotations_of("cls", "scratch/batch2/b.jpg") == [("class", "scratch")]
    assert annotations_of("cls", "OK/c.jpg") == [("no_defect", "")]
    assert annotations_of("cls", "defect-free/d.jpg") == [("no_defect", "")]
