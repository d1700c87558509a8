"""Tiny on-disk data sets for the import tests, built with Pillow and numpy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from django.core.management import call_command
from PIL import Image

from labeling.models import Annotation, Dataset, DatasetItem, ImageAsset


def write_image(
    path: Path, *, size: tuple[int, int] = (40, 30), seed: int = 0, image_format: str = "JPEG"
) -> Path:
    """A small random grey image (different content per seed) written to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path, format=image_format)
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path, format="PNG")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, document: object) -> Path:
    return write_text(path, json.dumps(document))


def write_truncated_jpeg(path: Path, *, seed: int = 99) -> Path:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, size=(60, 80), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def voc_xml(filename: str, size: tuple[int, int], objects: list[tuple[str, tuple[float, ...]]]) -> str:
    boxes = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
        f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for name, box in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>1</depth></size>{boxes}</annotation>"
    )


def import_dataset(
    path: Path, *, name: str, format: str, skip_bad: bool = False, as_json: bool = False
) -> str:
    """Run the management command; its standard output."""
    output = io.StringIO()
    arguments = [str(path), "--name", name, "--format", format]
    arguments += ["--skip-bad"] if skip_bad else []
    arguments += ["--json"] if as_json else []
    call_command("import_dataset", *arguments, stdout=output)
    return output.getvalue()


def stored_files(media_root: Path) -> list[Path]:
    return sorted(path for path in Path(media_root).rglob("*") if path.is_file())


def row_counts() -> dict[str, int]:
    return {
        "datasets": Dataset.objects.count(),
        "images": ImageAsset.objects.count(),
        "items": DatasetItem.objects.count(),
        "annotations": Annotation.objects.count(),
    }


def annotations_of(dataset: str, source_name: str) -> list[tuple[str, str]]:
    item = DatasetItem.objects.get(dataset__name=dataset, source_name=source_name)
    return [(annotation.kind, annotation.label) for annotation in item.annotations.all()]


def mask_array(annotation: Annotation) -> np.ndarray:
    with annotation.mask.open("rb") as handle, Image.open(handle) as image:
        assert image.mode == "L"
        return np.array(image)


def encode_coco_rle_string(mask: np.ndarray) -> tuple[list[int], str]:
    """COCO RLE of a boolean mask: the run lengths (column-major) and pycocotools' string form."""
    flat = mask.T.reshape(-1)
    runs: list[int] = []
    current, length = False, 0
    for value in flat:
        if bool(value) == current:
            length += 1
        else:
            runs.append(length)
            current, length = bool(value), 1
    runs.append(length)
    text = []
    for index, run in enumerate(runs):
        value = run - runs[index - 2] if index > 2 else run
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            text.append(chr(chunk + 48))
    return runs, "".join(text)


def encode_brush_rle(mask: np.ndarray) -> list[int]:
    """Label Studio's `brushlabels` RLE of a boolean mask (RGBA canvas, mask in alpha).

    Long runs use repeat chunks; stretches of single values use literal chunks, so that the
    decoder's two branches are both exercised.
    """
    canvas = np.zeros((*mask.shape, 4), dtype=np.uint8)
    canvas[..., 0] = np.where(mask, 200, 0)
    canvas[..., 3] = np.where(mask, 255, 0)
    values = canvas.reshape(-1).tolist()
    bits: list[int] = []

    def write(value: int, size: int) -> None:
        bits.extend((value >> (size - 1 - shift)) & 1 for shift in range(size))

    run_sizes = [3, 4, 8, 16]
    write(len(values), 32)
    write(7, 5)  # word size 8
    for size in run_sizes:
        write(size - 1, 4)
    index = 0
    while index < len(values):
        end = index
        while end < len(values) and values[end] == values[index] and end - index < 1 << 16:
            end += 1
        if end - index > 1:
            size_index = next(i for i, size in enumerate(run_sizes) if (1 << size) >= end - index)
            write(1, 1)
            write(size_index, 2)
            write(end - index - 1, run_sizes[size_index])
            write(values[index], 8)
        else:
            literal_end = index + 1
            while (
                literal_end < len(values)
                and literal_end - index < 8
                and values[literal_end] != values[literal_end - 1]
                and (literal_end + 1 >= len(values) or values[literal_end] != values[literal_end + 1])
            ):
                literal_end += 1
            write(0, 1)
            write(0, 2)
            write(literal_end - index - 1, 3)
            for value in values[index:literal_end]:
                write(value, 8)
            end = literal_end
        index = end
    bits.extend([0] * (-len(bits) % 8))
    return [int("".join(map(str, bits[start : start + 8])), 2) for start in range(0, len(bits), 8)]


def labelstudio_result(result_type: str, value: dict, width: int = 40, height: int = 20) -> dict:
    """One entry of a Label Studio task's annotation `result` list."""
    return {
        "type": result_type,
        "value": value,
        "from_name": "label",
        "to_name": "image",
        "original_width": width,
        "original_height": height,
    }
