"""What the station and labeling pages draw over an image, read back from Chromium.

A model region with a mask is built here with the model's own encoder (`run_length_encode`), on
a grid of whole cells of the region's box; the pages' drawing is read as on-screen rectangles
(the image element's, each region's box, mask and caption) and mapped back to image pixels
through the image element's rectangle, or as the screen pixels a mask changes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from models_registry.ml.serving.postprocessing import run_length_encode

# An asymmetric band of cells, so that a mask drawn transposed, flipped or shifted by a cell shows.
MASK_CELLS = np.array(
    [[abs(column - 2 * row - 1) <= 1 or (row, column) == (0, 0) for column in range(15)] for row in range(8)],
    dtype=np.uint8,
)

GEOMETRY_JS = """(selector) => {
  const rect = (element) => {
    if (!element) return null;
    const r = element.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  };
  const image = document.querySelector(selector);
  return {
    image: rect(image),
    width: image.width,
    height: image.height,
    regions: [...document.querySelectorAll(".region.model")].map((group) => {
      const box = group.querySelector("rect");
      const text = group.querySelector("text");
      return {
        box: rect(box),
        mask: rect(group.querySelector(".region-mask")),
        caption: rect(text),
        caption_font_px: parseFloat(getComputedStyle(text).fontSize),
        stroke_px: parseFloat(getComputedStyle(box).strokeWidth),
      };
    }),
  };
}"""


def masked_region(x: float, y: float, width: float, height: float, *, label: str, score: float = 0.9) -> dict:
    """A model region whose mask is MASK_CELLS over its box, as the backend sends it."""
    return {
        "x": x, "y": y, "width": width, "height": height, "label": label, "score": score,
        "mask_rle": run_length_encode(MASK_CELLS),
    }  # fmt: skip


def overlay_geometry(page, image_selector: str) -> dict:
    return page.evaluate(GEOMETRY_JS, image_selector)


PAINTED_JS = """(selector) => {
  const images = [document.querySelector(selector), ...document.querySelectorAll(".region-mask")];
  return Promise.all(images.map((image) => image.decode()));
}"""


def wait_until_painted(page, image_selector: str) -> None:
    """Wait until the unit's image and the masks drawn over it are decoded: the page shows a
    unit before its image has arrived, and an image paints once decoded."""
    page.evaluate(PAINTED_JS, image_selector)


def in_image_pixels(rect: dict, geometry: dict) -> dict:
    """An on-screen rectangle mapped back to the image's own pixels."""
    image = geometry["image"]
    scale_x = geometry["width"] / image["width"]
    scale_y = geometry["height"] / image["height"]
    return {
        "x": (rect["x"] - image["x"]) * scale_x,
        "y": (rect["y"] - image["y"]) * scale_y,
        "width": rect["width"] * scale_x,
        "height": rect["height"] * scale_y,
    }


def screen_scale(geometry: dict) -> float:
    """CSS pixels on the screen per image pixel."""
    return geometry["image"]["width"] / geometry["width"]


def assert_covers(rect: dict, region: dict, tolerance: float = 2.0) -> None:
    for key in ("x", "y", "width", "height"):
        assert abs(rect[key] - region[key]) <= tolerance, (key, rect, region)


def screenshot(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)


def mask_cells_on_screen(region: dict, geometry: dict, shown: np.ndarray, hidden: np.ndarray):
    """Per screen pixel inside the region's box, well inside one cell (2 px from every cell and
    box edge, clear of the outline): whether the mask changed it, and whether its cell is a
    defect cell. The two screenshots are with the model's highlights shown and hidden."""
    rows, columns = MASK_CELLS.shape
    image = geometry["image"]
    scale = screen_scale(geometry)
    left = image["x"] + region["x"] * scale
    top = image["y"] + region["y"] * scale
    cell_width = region["width"] * scale / columns
    cell_height = region["height"] * scale / rows
    xs = np.arange(int(left), int(left + region["width"] * scale) + 1)
    ys = np.arange(int(top), int(top + region["height"] * scale) + 1)
    centre_x = (xs + 0.5 - left) / cell_width  # in cells
    centre_y = (ys + 0.5 - top) / cell_height
    inner_x = _well_inside(centre_x, columns, margin=2 / cell_width)
    inner_y = _well_inside(centre_y, rows, margin=2 / cell_height)
    xs, ys = xs[inner_x], ys[inner_y]
    cells = MASK_CELLS[np.floor(centre_y[inner_y]).astype(int)][:, np.floor(centre_x[inner_x]).astype(int)]
    changed = np.abs(shown[np.ix_(ys, xs)] - hidden[np.ix_(ys, xs)]).sum(axis=2) > 20
    return changed, cells.astype(bool)


def _well_inside(position: np.ndarray, cells: int, margin: float) -> np.ndarray:
    """Positions (in cells) inside the grid and at least `margin` (in cells) from a cell edge."""
    within = position % 1
    return (position > 0) & (position < cells) & (within > margin) & (within < 1 - margin)


def assert_mask_drawn_over_its_cells(
    region: dict, geometry: dict, shown: np.ndarray, hidden: np.ndarray
) -> None:
    changed, defect = mask_cells_on_screen(region, geometry, shown, hidden)
    assert defect.sum() > 200 and (~defect).sum() > 200  # enough pixels of both kinds to judge
    assert changed[defect].mean() > 0.97, "the mask leaves defect cells undrawn"
    assert changed[~defect].mean() < 0.01, "the mask is drawn over cells without a defect"


def expected_mask_pixels(region: dict, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The region's mask at image resolution (a pixel is in when its centre is in a defect cell),
    and the pixels within 1 px of a cell edge, where either answer is fair."""
    rows, columns = MASK_CELLS.shape
    centre_x = (np.arange(width) + 0.5 - region["x"]) * columns / region["width"]
    centre_y = (np.arange(height) + 0.5 - region["y"]) * rows / region["height"]
    inside_x = (centre_x >= 0) & (centre_x < columns)
    inside_y = (centre_y >= 0) & (centre_y < rows)
    column = np.clip(np.floor(centre_x).astype(int), 0, columns - 1)
    row = np.clip(np.floor(centre_y).astype(int), 0, rows - 1)
    expected = MASK_CELLS[row][:, column].astype(bool) & inside_y[:, None] & inside_x[None, :]
    near_x = np.abs(centre_x - np.round(centre_x)) * region["width"] / columns <= 1
    near_y = np.abs(centre_y - np.round(centre_y)) * region["height"] / rows <= 1
    return expected, near_y[:, None] | near_x[None, :]
