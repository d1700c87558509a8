"""`bench/simulate_line.py` against a real HTTP server (pytest-django's live server)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from bench.simulate_line import (
    AUTHORIZATION_KEYWORD,
    HEALTH_PATH,
    UNITS_PATH,
    PostResult,
    SimulationError,
    main,
    simulate,
    summarise,
    summary_text,
)
from inspection.authentication import KEYWORD
from inspection.enums import AutomationLevel, UnitStatus
from inspection.models import DeviceKey, Unit
from inspection.services.stations import device_key_create

REPOSITORY = Path(__file__).resolve().parents[2]
SMALL_IMAGES = "--width 320 --height 180 --pool 4"


def run_line(arguments: str) -> tuple[dict, str]:
    """Run the line with `arguments` (split on spaces) and --json: its summary and its stderr."""
    out, err = io.StringIO(), io.StringIO()
    simulate(f"{arguments} {SMALL_IMAGES} --json".split(), stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_every_unit_sent_is_accepted_and_stored(live_server, make_station, media_root):
    station = make_station(slug="line-1", level=AutomationLevel.FULL)

    summary, said = run_line(
        f"--station line-1 --rate 5 --duration 2 --concurrency 2 --url {live_server.url}"
    )

    assert "created device key" in said
    assert DeviceKey.objects.filter(station=station).count() == 1
    assert summary["sent"] == summary["accepted"] == 10
    assert summary["error_count"] == 0 and summary["errors"] == {}
    assert summary["decided_by"] == {"model": 10}
    assert summary["decisions"]["pass"] + summary["decisions"]["fail"] == 10
    assert summary["latency_ms"]["p50"] > 0
    units = Unit.objects.filter(station=station)
    assert units.count() == 10
    assert len(set(units.values_list("serial", flat=True))) == 10
    assert all(unit.metadata["source"] == "simulate_line" for unit in units)


def test_a_given_key_is_used_and_a_human_station_leaves_units_pending(live_server, make_station, media_root):
    station = make_station(slug="line-2", level=AutomationLevel.HUMAN)
    _, key = device_key_create(station=station, name="line computer")

    summary, said = run_line(f"--station line-2 --rate 5 --duration 1 --key {key} --url {live_server.url}")

    assert "created device key" not in said
    assert DeviceKey.objects.filter(station=station).count() == 1
    assert summary["sent"] == summary["accepted"] == 5
    assert summary["decisions"] == {"pass": 0, "fail": 0, "pending": 5}
    assert Unit.objects.filter(station=station, status=UnitStatus.PENDING).count() == 5


@pytest.mark.django_db
def test_an_unknown_station_is_a_clear_error(make_station):
    make_station(slug="line-1")

    with pytest.raises(SimulationError, match=r"no station 'nowhere' in this database \(stations: line-1\)"):
        run_line("--station nowhere --rate 1 --duration 1")


@pytest.mark.django_db
def test_main_prints_the_error_and_exits_2(make_station):
    make_station(slug="line-1")
    out, err = io.StringIO(), io.StringIO()

    status = main(["--station", "nowhere", "--rate", "1", "--duration", "1"], stdout=out, stderr=err)

    assert status == 2
    assert err.getvalue() == "error: no station 'nowhere' in this database (stations: line-1)\n"
    assert out.getvalue() == ""


def test_a_bad_option_is_an_error_with_the_usage():
    out, err = io.StringIO(), io.StringIO()

    status = main(["--station", "line-1", "--rate", "0", "--duration", "1"], stdout=out, stderr=err)

    assert status == 2
    assert err.getvalue().startswith("usage: python bench/simulate_line.py")
    assert err.getvalue().endswith("error: argument --rate: must be a positive number, got '0'\n")
    with pytest.raises(SimulationError, match="the following arguments are required: --station"):
        simulate(["--rate", "1", "--duration", "1"], stdout=out, stderr=err)


@pytest.mark.django_db
def test_an_unreachable_server_is_a_clear_error_and_creates_no_key(make_station):
    station = make_station(slug="line-1")
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(SimulationError, match=f"cannot reach Loupe at http://127.0.0.1:{port}"):
        run_line(f"--station line-1 --rate 1 --duration 1 --url http://127.0.0.1:{port}")

    assert not DeviceKey.objects.filter(station=station).exists()


@pytest.mark.django_db
def test_a_key_of_another_station_is_refused(make_station):
    make_station(slug="line-1")
    other = make_station(slug="line-2", champion=None)
    _, key = device_key_create(station=other, name="other line")

    with pytest.raises(SimulationError, match="--key belongs to station line-2, not line-1"):
        run_line(f"--station line-1 --rate 1 --duration 1 --key {key}")


def test_the_summary_names_errors_and_a_server_that_did_not_keep_up():
    decided = {"decision": "fail", "decided_by": "model"}
    results = [
        PostResult(0, 201, None, 40.0, 0.0, 1.0, decided, "scratch"),
        PostResult(1, 201, None, 60.0, 2500.0, 3.0, decided, "no_defect"),
        PostResult(2, 401, "invalid device key", 5.0, 2600.0, 3.1, None, "no_defect"),
        PostResult(3, None, "ConnectionError: refused", 1.0, 2700.0, 3.2, None, "no_defect"),
    ]

    summary = summarise(
        results,
        station="line-1",
        url="http://line",
        rate=2.0,
        duration=2.0,
        concurrency=1,
        elapsed=3.2,
        interrupted=False,
        image="320x180 JPEG",
        drift={},
    )

    assert summary["sent"] == 4 and summary["accepted"] == 2 and summary["error_count"] == 2
    assert summary["errors"] == {"401 invalid device key": 1, "ConnectionError: refused": 1}
    assert summary["latency_ms"]["max"] == 60.0
    assert summary["kept_up"] is False
    assert summary["achieved_rate_per_second"] == 2 / 3.2
    assert summary["decisions"] == {"pass": 0, "fail": 2, "pending": 0}
    assert summary["model_vs_generated_truth"] == {"agree": 1, "disagree": 1}
    text = summary_text(summary)
    assert "1 x 401 invalid device key" in text
    assert "the server did not keep up" in text and "2.70 s late" in text


def test_the_paths_and_the_key_keyword_are_the_line_apis():
    assert UNITS_PATH == reverse("unit-list")
    assert HEALTH_PATH == reverse("health")
    assert AUTHORIZATION_KEYWORD == KEYWORD


def test_the_script_runs_with_help():
    completed = subprocess.run(
        [sys.executable, "bench/simulate_line.py", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert "--station" in completed.stdout and "--rate" in completed.stdout


def test_the_run_and_its_summary_import_without_django():
    code = (
        "import sys\n"
        "from bench.simulate_line import LineRun, PooledUnit, PostResult, _generate, summarise\n"
        "from bench.simulate_line import summary_text\n"
        "django = ('django', 'rest_framework', 'inspection')\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in django)\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr
