"""Peak memory of checking one unit image, as `POST /api/v1/units/` does (issue 15, security).

    python bench/image_memory.py [--max-pixels N] [--max-decode-bytes N | --no-decode-budget]

Each case runs `inspection.images.image_check` in a fresh Python process on a file made
beforehand, and reports the process's resident memory before the call and its peak (VmHWM)
after it: what one request adds to a web process. The cases are the issue's 152 kB PNG of
6324x6324 transparent pixels, and a 12 MP camera JPEG decoded for a 640x360 model. The
"before" figures in bench/RESULTS.md were taken on the commit before the decode budget, where
`image_check` had no `max_decode_bytes`: there, run it with --no-decode-budget.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

CHILD = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, {repository!r})
import django
django.setup()
from inspection.images import ImageRejected, image_check

def memory(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

data = open({path!r}, "rb").read()
limits = {limits!r}
before = memory("VmRSS:")
try:
    checked = image_check(data, filename="unit", max_bytes=25 * 1024 * 1024,
                          decode_size=lambda width, height: (640, 360), **limits)
    outcome = f"accepted, decoded {{checked.frame.decoded_width}}x{{checked.frame.decoded_height}}"
except ImageRejected as error:
    outcome = f"refused ({{error.code}}): {{error}}"
print(json.dumps({{"rss_before_mb": before, "peak_mb": memory("VmHWM:"), "outcome": outcome}}))
"""


def _transparent_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (6324, 6324), (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def _camera_jpeg() -> bytes:
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (3000 // 8, 4000 // 8, 3), dtype=np.uint8)
    picture = Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-pixels", type=int, default=40_000_000)
    parser.add_argument("--max-decode-bytes", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--no-decode-budget", action="store_true", help="the code before the budget")
    arguments = parser.parse_args()
    limits = {"max_pixels": arguments.max_pixels}
    if not arguments.no_decode_budget:
        limits["max_decode_bytes"] = arguments.max_decode_bytes
    cases = {"6324x6324 RGBA PNG": _transparent_png(), "4000x3000 RGB JPEG": _camera_jpeg()}
    with tempfile.TemporaryDirectory() as folder:
        for name, data in cases.items():
            path = Path(folder) / "image"
            path.write_bytes(data)
            code = CHILD.format(repository=str(REPOSITORY), path=str(path), limits=limits)
            result = json.loads(
                subprocess.run(
                    [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPOSITORY
                ).stdout.splitlines()[-1]
            )
            added = result["peak_mb"] - result["rss_before_mb"]
            print(
                f"{name} ({len(data) / 1024:,.0f} kB), {limits}: RSS {result['rss_before_mb']:.0f} MB, "
                f"peak {result['peak_mb']:.0f} MB (+{added:.0f} MB); {result['outcome']}"
            )


if __name__ == "__main__":
    main()
