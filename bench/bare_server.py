"""The server a user would write instead of Loupe, around the very same ONNX graph: FastAPI and ONNX
Runtime, decoding the upload, resizing it to the graph's input and running the graph. No database,
no storage, no policy, no events: the reference `bench/api.py --against-bare` measures Loupe's
line API against (issue 16).

    python bench/bare_server.py BUNDLE_DIR [--port 8100] [--threads 0]

POST /predict with a multipart `image` (what the line sends Loupe) answers the largest value of
the graph's first output. The endpoint is a plain function, so FastAPI runs it in its thread
pool, as a user's would; ONNX Runtime releases the GIL while the graph runs. For a model of
the tiles geometry (its `geometry` in loupe-model.json: tiles of the graph's size at `scale`
times the camera's pixels, neighbours sharing `overlap` pixels) it cuts the frame into tiles, as
its user would have to, and runs them as one batch.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image

ONNX_FILE = "model.onnx"  # models_registry.ml.serving.bundle.ONNX_FILE, read as a user would
CONFIG_FILE = "loupe-model.json"


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts of tiles covering `length`, neighbours sharing at least `overlap`."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def application(bundle: Path, *, threads: int) -> FastAPI:
    options = onnxruntime.SessionOptions()
    if threads:  # else ONNX Runtime's default, one per core, as a user would leave it
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(bundle / ONNX_FILE), options, providers=["CPUExecutionProvider"]
    )
    graph_input = session.get_inputs()[0]
    _batch, height, width, _channels = graph_input.shape  # uint8 N x H x W x 3
    geometry = json.loads((bundle / CONFIG_FILE).read_text()).get("geometry", {})
    app = FastAPI()

    def whole(picture: Image.Image) -> np.ndarray:
        pixels = picture.convert("RGB").resize((width, height), Image.BILINEAR)
        return np.asarray(pixels, dtype=np.uint8)[None]

    def tiles(picture: Image.Image) -> np.ndarray:
        scale, overlap = float(geometry.get("scale", 1.0)), int(geometry.get("overlap", 0))
        picture = picture.convert("RGB")
        if scale != 1.0:
            picture = picture.resize(
                (round(picture.width * scale), round(picture.height * scale)), Image.BILINEAR
            )
        pixels = np.asarray(picture, dtype=np.uint8)
        return np.stack(
            [
                pixels[y : y + height, x : x + width]
                for y in tile_starts(pixels.shape[0], height, overlap)
                for x in tile_starts(pixels.shape[1], width, overlap)
            ]
        )

    views = tiles if geometry.get("kind") == "tiles" else whole

    @app.post("/predict")
    def predict(image: UploadFile = File(...)) -> dict:  # noqa: B008 (FastAPI's way)
        with Image.open(image.file) as picture:
            batch = views(picture)
        outputs = session.run(None, {graph_input.name: batch})
        return {"output_max": float(np.max(outputs[0]))}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)"
    )
    options = parser.parse_args()
    uvicorn.run(
        application(options.bundle, threads=options.threads),
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
