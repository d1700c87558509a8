"""`manage.py generate_synthetic OUT --count N`: write a synthetic data set of phone-screen units.

Needs no database: it only parses and checks its arguments and calls
`models_registry.ml.synthetic.writing.write_dataset`. The reference set of fine defects (hairline
scratches and small spots with exact masks, as a 1920x1080 line camera sees them) is
`generate_synthetic OUT --count 1000 --size 1920x1080 --fine-defects --format coco --workers 2`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_registry.ml.synthetic.config import MAX_SIZE, MIN_SIZE, NEW_DEFECT_CLASSES, SyntheticConfig
from models_registry.ml.synthetic.writing import DATASET_FORMATS, write_dataset

SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class Command(BaseCommand):
    help = (
        "Generate synthetic photographs of phone screens (good units and units with scratches, cracks, "
        "stains or dead pixels) with their masks, as a mask-folder or COCO data set. --fine-defects "
        "draws defects in absolute camera pixels, as a 1920x1080 camera sees them: hairline scratches "
        "1-3 px wide and low in contrast, stains as small spots 4-25 px across, next to fainter "
        "nuisance dust. The drift options (--brightness, --contrast, --blur, --color-cast, "
        "--new-defect) simulate a changed line."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out", help="folder to write (created; must be empty unless --overwrite)")
        parser.add_argument("--count", required=True, help="number of units to generate")
        parser.add_argument("--seed", default="0", help="random seed (default 0); same seed, same files")
        parser.add_argument(
            "--format", default="masks", help=f"{' or '.join(DATASET_FORMATS)} (default masks)"
        )
        parser.add_argument("--size", default="640x360", help="image size WIDTHxHEIGHT (default 640x360)")
        parser.add_argument(
            "--defect-rate", default="0.5", help="share of defective units, 0-1 (default 0.5)"
        )
        parser.add_argument("--brightness", default="1.0", help="lighting multiplier, e.g. 0.6 for dimmer")
        parser.add_argument("--contrast", default="1.0", help="contrast multiplier around the image mean")
        parser.add_argument("--blur", default="0.0", help="extra gaussian blur sigma in pixels (focus drift)")
        parser.add_argument(
            "--color-cast", default="1,1,1", help="R,G,B multipliers of the light, e.g. 1.15,1.0,0.85"
        )
        parser.add_argument(
            "--new-defect",
            default=None,
            help=f"a defect kind the model never saw: {', '.join(NEW_DEFECT_CLASSES)}",
        )
        parser.add_argument(
            "--new-defect-rate",
            default="1.0",
            help="share of defective units that get the new defect (default 1: all of them)",
        )
        parser.add_argument(
            "--fine-defects",
            action="store_true",
            help="fine defects in camera pixels (hairline scratches, small spots), for --size 1920x1080",
        )
        parser.add_argument(
            "--workers", default="1", help="processes rendering units (default 1); same files for any number"
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="write into a non-empty OUT, replacing what an earlier run generated there",
        )

    def handle(self, *args, **options) -> None:
        count = _integer(options["count"], "--count")
        if count < 0:
            raise CommandError(f"--count must be zero or positive, got {count}")
        seed = _integer(options["seed"], "--seed")
        if seed < 0:
            raise CommandError(f"--seed must be zero or positive, got {seed}")
        if options["format"] not in DATASET_FORMATS:
            raise CommandError(
                f"--format must be one of {', '.join(DATASET_FORMATS)}, got {options['format']!r}"
            )
        width, height = _size(options["size"])
        new_defect = options["new_defect"]
        if new_defect is not None and new_defect not in NEW_DEFECT_CLASSES:
            raise CommandError(
                f"--new-defect must be one of {', '.join(NEW_DEFECT_CLASSES)}, got {new_defect!r}"
            )
        defect_rate = _rate(options["defect_rate"], "--defect-rate")
        new_defect_rate = _rate(options["new_defect_rate"], "--new-defect-rate")
        brightness = _positive(options["brightness"], "--brightness")
        contrast = _positive(options["contrast"], "--contrast")
        blur = _number(options["blur"], "--blur")
        if blur < 0:
            raise CommandError(f"--blur must be zero or positive, got {blur}")
        color_cast = _color_cast(options["color_cast"])
        workers = _integer(options["workers"], "--workers")
        if workers < 1:
            raise CommandError(f"--workers must be 1 or more, got {workers}")

        config = SyntheticConfig(
            width=width,
            height=height,
            defect_rate=defect_rate,
            brightness=brightness,
            contrast=contrast,
            blur=blur,
            color_cast=color_cast,
            new_defect=new_defect,
            new_defect_rate=new_defect_rate,
            fine_defects=options["fine_defects"],
        )
        out = Path(options["out"])
        if out.exists() and not out.is_dir():
            raise CommandError(f"OUT {out} exists and is not a folder")
        if out.is_dir() and any(out.iterdir()) and not options["overwrite"]:
            raise CommandError(f"OUT {out} is not empty: choose another folder or pass --overwrite")

        summary = write_dataset(
            out,
            count,
            seed=seed,
            config=config,
            format=options["format"],
            overwrite=options["overwrite"],
            workers=workers,
        )
        units = ", ".join(f"{label} {number}" for label, number in summary["units"].items()) or "none"
        instances = ", ".join(f"{label} {number}" for label, number in summary["instances"].items()) or "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {summary['count']} units ({summary['size']}, {summary['format']}, seed {seed}"
                f"{', fine defects' if summary['fine_defects'] else ''}) to {summary['out']}"
            )
        )
        self.stdout.write(f"  units: {units}")
        self.stdout.write(f"  defect instances: {instances}")


def _number(text: str, option: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise CommandError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CommandError(f"{option} must be a finite number, got {text!r}")
    return value


def _integer(text: str, option: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise CommandError(f"{option} must be a whole number, got {text!r}") from None


def _positive(text: str, option: str) -> float:
    value = _number(text, option)
    if value <= 0:
        raise CommandError(f"{option} must be a positive number, got {text!r}")
    return value


def _rate(text: str, option: str) -> float:
    value = _number(text, option)
    if not 0 <= value <= 1:
        raise CommandError(f"{option} must be between 0 and 1, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    match = SIZE_PATTERN.match(text)
    if not match:
        raise CommandError(f"--size must look like 640x360 (WIDTHxHEIGHT), got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
        raise CommandError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels a side, got {text!r}")
    return width, height


def _color_cast(text: str) -> tuple[float, float, float]:
    parts = [part.strip() for part in text.split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(value) and value > 0 for value in values):
        raise CommandError(
            f"--color-cast must be three positive numbers R,G,B (e.g. 1.15,1.0,0.85), got {text!r}"
        )
    return values  # type: ignore[return-value]
