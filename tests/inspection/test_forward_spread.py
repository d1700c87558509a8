"""When a unit's forward may spread over the process's inference threads (inspection.services.units):
only as the one unit in flight in its process, and while no other process's forward spreads."""

from __future__ import annotations

import subprocess
import sys
import threading

from inspection.services import units
from models_registry.ml.serving.predictor import OnnxPredictor
from tests.inspection.factories import posted_unit


def _spread_inside(*, others: int = 0) -> bool:
    """`_forward_spread()`'s answer inside a counted call, with `others` units in flight besides."""
    inside, release = threading.Event(), threading.Event()

    @units._in_flight
    def other() -> None:
        inside.set()
        release.wait(10)

    threads = [threading.Thread(target=other) for _ in range(others)]
    for thread in threads:
        inside.clear()
        thread.start()
        assert inside.wait(10)

    @units._in_flight
    def mine() -> bool:
        with units._forward_spread() as spread:
            return spread

    try:
        return mine()
    finally:
        release.set()
        for thread in threads:
            thread.join(10)


def test_a_unit_alone_spreads_and_one_among_others_does_not(settings, tmp_path):
    settings.LOUPE_DATA_DIR = tmp_path
    assert _spread_inside() is True
    assert _spread_inside(others=1) is False
    assert _spread_inside() is True  # the count goes back down


def test_while_another_process_spreads_a_unit_alone_keeps_to_one_thread(settings, tmp_path):
    settings.LOUPE_DATA_DIR = tmp_path
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'a+b'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); sys.stdin.readline()",
            str(tmp_path / "forward-spread.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        # Each thread keeps its own handle on the lock file: ask from a fresh thread.
        answers = []
        asking = threading.Thread(target=lambda: answers.append(_spread_inside()))
        asking.start()
        asking.join(10)
        assert answers == [False]
    finally:
        holder.communicate("done\n", timeout=10)
    answers = []
    asking = threading.Thread(target=lambda: answers.append(_spread_inside()))
    asking.start()
    asking.join(10)
    assert answers == [True]


def test_the_line_api_tells_the_predictor(
    db, make_station, device_client, media_root, monkeypatch, settings, tmp_path
):
    settings.LOUPE_DATA_DIR = tmp_path
    seen = []
    original = OnnxPredictor.check_and_predict

    def check_and_predict(self, image, *, spread=True):
        seen.append(spread)
        return original(self, image, spread=spread)

    monkeypatch.setattr(OnnxPredictor, "check_and_predict", check_and_predict)
    client = device_client(make_station())
    posted_unit(client, "SN-alone", width=1280, height=720)
    assert seen == [True]
