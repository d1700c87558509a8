"""Mask folders (the Magnetic-tile layout): masks, classes and "no defect", and what is refused."""

import numpy as np
import pytest
from django.core.management.base import CommandError

from labeling.models import Annotation, Dataset
from tests.labeling.formats.factories import (
    annotations_of,
    import_dataset,
    mask_array,
    row_counts,
    stored_files,
    write_image,
    write_mask,
)

pytestmark = pytest.mark.django_db


def blob_mask(size=(40, 30)):
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[5:10, 8:20] = True
    return mask


def make_tiles(root):
    write_image(root / "MT_Crack" / "Imgs" / "c1.jpg", seed=1)
    write_mask(root / "MT_Crack" / "Imgs" / "c1.png", blob_mask())
    write_image(root / "MT_Crack" / "Imgs" / "c2.jpg", seed=2)
    write_mask(root / "MT_Crack" / "Imgs" / "c2.png", np.zeros((30, 40), dtype=bool))
    write_image(root / "MT_Free" / "Imgs" / "f1.jpg", seed=3)
    write_mask(root / "MT_Free" / "Imgs" / "f1.png", np.zeros((30, 40), dtype=bool))
    write_image(root / "Blowhole" / "b1.png", seed=4, image_format="PNG")
    write_mask(root / "Blowhole" / "b1_mask.png", blob_mask())
    write_image(root / "good" / "g1.png", seed=5, image_format="PNG")


def test_mask_folders_import_masks_classes_and_no_defect(tmp_path):
    make_tiles(tmp_path / "tiles")

    output = import_dataset(tmp_path / "tiles", name="tiles", format="masks")

    assert Dataset.objects.get(name="tiles").classes == ["Blowhole", "MT_Crack"]
    assert annotations_of("tiles", "MT_Crack/Imgs/c1.jpg") == [("mask", "MT_Crack"), ("class", "MT_Crack")]
    assert annotations_of("tiles", "MT_Crack/Imgs/c2.jpg") == [("class", "MT_Crack")]
    assert annotations_of("tiles", "MT_Free/Imgs/f1.jpg") == [("no_defect", "")]
    assert annotations_of("tiles", "Blowhole/b1.png") == [("mask", "Blowhole"), ("class", "Blowhole")]
    assert annotations_of("tiles", "good/g1.png") == [("no_defect", "")]
    assert "mask 2" in output and "class 3" in output and "no_defect 2" in output


def test_stored_mask_is_binary_png_of_the_image_size(tmp_path):
    root = tmp_path / "tiles"
    write_image(root / "MT_Crack" / "Imgs" / "c1.jpg", seed=1)
    soft = np.where(blob_mask(), 230, 0).astype(np.uint8)
    soft[0, 0] = 40  # compression noise below the threshold
    from PIL import Image

    Image.fromarray(soft, mode="L").save(root / "MT_Crack" / "Imgs" / "c1.png")

    import_dataset(root, name="binary", format="masks")

    annotation = Annotation.objects.get(kind="mask")
    pixels = mask_array(annotation)
    assert pixels.shape == (30, 40)
    assert set(np.unique(pixels)) == {0, 255}
    assert np.array_equal(pixels == 255, blob_mask())
    assert annotation.geometry == {"bbox": {"x": 8, "y": 5, "width": 12, "height": 5}, "area": 60}
    assert annotation.mask.name.startswith("masks/")


def test_mask_size_mismatch_missing_mask_and_orphan_mask_are_bad(tmp_path, media_root):
    root = tmp_path / "tiles"
    make_tiles(root)
    write_image(root / "MT_Crack" / "Imgs" / "wrong.jpg", size=(40, 30), seed=7)
    write_mask(root / "MT_Crack" / "Imgs" / "wrong.png", np.zeros((10, 10), dtype=bool))
    write_image(root / "MT_Crack" / "Imgs" / "nomask.jpg", seed=8)
    write_mask(root / "MT_Crack" / "Imgs" / "lonely_mask.png", blob_mask())

    with pytest.raises(CommandError) as raised:
        import_dataset(root, name="tiles", format="masks")

    message = str(raised.value)
    assert "3 bad file(s)" in message
    assert "wrong.png: mask is 10x10 but the image wrong.jpg is 40x30" in message
    assert "nomask.jpg: no mask file" in message
    assert "lonely_mask.png: mask without an image" in message
    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []

    import_dataset(root, name="tiles", format="masks", skip_bad=True)

    assert row_counts()["items"] == 5
