"""Mask folders (the Magnetic-tile layout), read only: `<class>/Imgs/x.jpg` with its mask `x.png`;
`parse_masks` gives each image its folder's class and its mask. Layout in docs/data-formats.md."""

from __future__ import annotations

from pathlib import Path

from labeling.formats.reading import (
    AnnotationRecord,
    BadInput,
    DatasetFormatError,
    ImportRecord,
    ParseResult,
    image_files,
    inspect_image,
    is_no_defect_name,
    mask_annotation,
    read_mask_file,
    relative_name,
)

IMAGE_SUBFOLDERS = frozenset({"imgs", "images"})
MASK_SUFFIX = "_mask"


def class_folders(root: Path) -> list[Path]:
    """The sub-folders of `root` (hidden ones skipped), by name; `DatasetFormatError` if none."""
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: expected a folder with one sub-folder per class")
    folders = sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))
    if not folders:
        raise DatasetFormatError(f"{root}: no class folders found")
    return folders


def _image_folder(class_folder: Path) -> Path:
    for child in sorted(class_folder.iterdir()):
        if child.is_dir() and child.name.lower() in IMAGE_SUBFOLDERS:
            return child
    return class_folder


def pair_images_and_masks(folder: Path) -> tuple[dict[Path, Path | None], list[Path]]:
    """Each image file of `folder` with its mask (or None), and the masks that have no image.

    A file is a mask when its stem ends in `_mask`, or when it is the `.png` sharing its stem
    with an image of another type (`x.jpg` + `x.png`).
    """
    files = image_files(folder, recursive=False)
    masks: dict[str, Path] = {}
    candidates: list[Path] = []
    for path in files:
        if path.stem.lower().endswith(MASK_SUFFIX):
            masks[path.stem[: -len(MASK_SUFFIX)]] = path
        else:
            candidates.append(path)
    stems_with_other_types = {path.stem for path in candidates if path.suffix.lower() != ".png"}
    images: dict[Path, Path | None] = {}
    for path in candidates:
        if path.suffix.lower() == ".png" and path.stem in stems_with_other_types:
            masks.setdefault(path.stem, path)
        else:
            images[path] = None
    for image_path in images:
        images[image_path] = masks.pop(image_path.stem, None)
    return images, sorted(masks.values())


def parse_masks(path: Path) -> ParseResult:
    """Read a mask-folder data set; see docs/data-formats.md."""
    result = ParseResult()
    for class_folder in class_folders(path):
        label = class_folder.name
        no_defect = is_no_defect_name(label)
        images, orphan_masks = pair_images_and_masks(_image_folder(class_folder))
        for mask_path in orphan_masks:
            result.bad(mask_path, "mask without an image")
        for image_path, mask_path in images.items():
            if not no_defect and mask_path is None:
                result.bad(
                    image_path,
                    f"no mask file (expected {image_path.stem}.png or {image_path.stem}_mask.png beside it)",
                )
                continue
            try:
                image = inspect_image(image_path)
            except BadInput as error:
                result.bad(image_path, str(error))
                continue
            if no_defect:
                annotations = [AnnotationRecord(kind="no_defect")]
            else:
                try:
                    mask = read_mask_file(mask_path, image)
                except BadInput as error:
                    result.bad(mask_path, str(error))
                    continue
                annotations = [AnnotationRecord(kind="class", label=label)]
                if mask.any():
                    annotations.insert(0, mask_annotation(label, mask))
            result.add(ImportRecord(relative_name(image_path, path), image, annotations))
    if not result.records and not result.bad_files:
        raise DatasetFormatError(f"{path}: no images found in its class folders")
    return result
