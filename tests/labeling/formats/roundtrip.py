"""Export round trips: data sets built through the importers, exported, imported again, compared."""

import hashlib
import io

import numpy as np
import pytest
from django.core.management import call_command

from labeling.formats.services import dataset_export
from labeling.models import Annotation, Dataset, DatasetItem
from labeling.services import dataset_import
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.writing import write_dataset
from tests.labeling.formats import factories
from tests.labeling.formats.factories import (
    labelstudio_result,
    mask_array,
    write_image,
    write_json,
)

SMALL = SyntheticConfig(width=160, height=90)


# --- Given: data sets built through the importers ------------------------------------------------


def synthetic_dataset(tmp_path, *, name, format, count=10, seed=6):
    """Generated phone screens (boxes and masks, or masks and classes); seed 6 draws every class."""
    write_dataset(tmp_path / f"generated-{name}", count, seed=seed, config=SMALL, format=format)
    dataset_import(path=tmp_path / f"generated-{name}", name=name, format=format)
    return Dataset.objects.get(name=name)


def stain_mask():
    mask = np.zeros((20, 40), dtype=bool)
    mask[3:9, 5:25] = True
    mask[15, 30] = True
    return mask


def labelstudio_dataset(tmp_path, *, name="mixed"):
    """Every kind of label: a fractional box and a polygon, a brush mask, an image-level class
    without a location, "no defect", and an unlabeled image."""
    root = tmp_path / f"ls-{name}"
    for seed, stem in enumerate(("shapes", "brush", "class-only", "good", "unlabeled"), start=1):
        write_image(root / "images" / f"{stem}.jpg", size=(40, 20), seed=seed)
    rectangle = {"x": 12.5, "y": 10, "width": 50.25, "height": 40, "rectanglelabels": ["scratch"]}
    polygon = {"points": [[10, 10], [52.5, 12], [50, 55]], "polygonlabels": ["dent"]}
    brush = {"format": "rle", "rle": factories.encode_brush_rle(stain_mask()), "brushlabels": ["stain"]}
    tasks = [
        (
            "shapes",
            [labelstudio_result("rectanglelabels", rectangle), labelstudio_result("polygonlabels", polygon)],
        ),
        ("brush", [labelstudio_result("brushlabels", brush)]),
        ("class-only", [labelstudio_result("choices", {"choices": ["chip"]})]),
        ("good", [labelstudio_result("choices", {"choices": ["no defect"]})]),
        ("unlabeled", []),
    ]
    write_json(
        root / "export.json",
        [
            {"id": number, "data": {"image": f"images/{stem}.jpg"}, "annotations": [{"result": results}]}
            for number, (stem, results) in enumerate(tasks, start=1)
        ],
    )
    dataset_import(path=root, name=name, format="labelstudio")
    return Dataset.objects.get(name=name)


def sha256_of(source_name, dataset):
    return DatasetItem.objects.get(dataset=dataset, source_name=source_name).image.sha256


# --- When: export, then import the export ------------------------------------------------------


def export_and_reimport(dataset, format, tmp_path, **options):
    out = tmp_path / f"export-{dataset.name}-{format}"
    summary = dataset_export(dataset=dataset, format=format, out=out, **options)
    dataset_import(path=out, name=f"{dataset.name}-{format}", format=format)
    return summary, out


# --- Then: the same images and equivalent labels -------------------------------------------------


def mask_digest(annotation):
    return hashlib.sha256(np.packbits(mask_array(annotation) >= 128).tobytes()).hexdigest()[:16]


def labels_by_image(name):
    """Per image hash, its labels as sorted (kind, label, numbers, mask digest) tuples."""
    labels = {}
    for item in DatasetItem.objects.filter(dataset__name=name).select_related("image"):
        rows = []
        for annotation in Annotation.objects.filter(item=item):
            geometry = annotation.geometry
            numbers = ()
            if annotation.kind == "box":
                numbers = (geometry["x"], geometry["y"], geometry["width"], geometry["height"])
            elif annotation.kind == "polygon":
                numbers = tuple(value for point in geometry["points"] for value in point)
            digest = mask_digest(annotation) if annotation.kind == "mask" else ""
            rows.append((annotation.kind, annotation.label, numbers, digest))
        labels[item.image.sha256] = sorted(rows, key=lambda row: (row[0], row[1], [round(n) for n in row[2]]))
    return labels


def assert_same_labels(actual, expected, *, pixels):
    assert set(actual) == set(expected)
    for sha256, expected_rows in expected.items():
        actual_rows = actual[sha256]
        assert [row[:2] for row in actual_rows] == [row[:2] for row in expected_rows], sha256
        for actual_row, expected_row in zip(actual_rows, expected_rows, strict=True):
            assert actual_row[2] == pytest.approx(expected_row[2], abs=pixels), (sha256, actual_row[:2])
            assert actual_row[3] == expected_row[3], (sha256, actual_row[:2])


def run_export(*arguments):
    output = io.StringIO()
    call_command("export_dataset", *arguments, stdout=output)
    return output.getvalue()
