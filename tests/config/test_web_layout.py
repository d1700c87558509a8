"""The web role's layout on the machine it starts on (config.processes.web_layout): processes,
line threads and inference threads from the cores, each overridable, and what `serve web` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from config.processes import (
    MULTIPROCESS_DIRECTORY_VARIABLE,
    ProcessOptions,
    WebLayout,
    process_command,
    shared_metrics_prepare,
    web_layout,
)

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cores", "expected"),
    [
        (1, (1, 2, 1)),
        (2, (1, 3, 2)),  # this machine: one process, its forwards spread over both cores when alone
        (3, (1, 4, 3)),
        (8, (4, 3, 2)),
        (16, (8, 3, 2)),
    ],
)
def test_layout_follows_the_cores(cores, expected):
    layout = web_layout({}, cores=cores)
    assert (layout.processes, layout.line_threads, layout.inference_threads) == expected
    assert layout.describe().startswith(f"{cores} core(s): {expected[0]} web process(es)")


def test_each_part_of_the_layout_can_be_set():
    environ = {"LOUPE_WEB_PROCESSES": "2", "LOUPE_LINE_THREADS": "5", "LOUPE_INFERENCE_THREADS": "1"}
    assert web_layout(environ, cores=2) == WebLayout(
        cores=2, processes=2, line_threads=5, inference_threads=1
    )
    # 0 or empty means automatic, as unset; the share follows the processes asked for.
    assert web_layout({"LOUPE_WEB_PROCESSES": "4", "LOUPE_LINE_THREADS": "0"}, cores=8) == WebLayout(
        cores=8, processes=4, line_threads=3, inference_threads=2
    )


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_a_bad_value_is_refused_naming_the_variable(value):
    with pytest.raises(ValueError, match=r"LOUPE_WEB_PROCESSES='.*': expected a whole number"):
        web_layout({"LOUPE_WEB_PROCESSES": value}, cores=2)


def test_a_bad_value_stops_the_settings_with_its_name():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPOSITORY,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "LOUPE_LINE_THREADS": "x"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: LOUPE_LINE_THREADS='x'" in result.stderr


def test_web_command_runs_the_layouts_processes(tmp_path):
    options = ProcessOptions(data_dir=tmp_path)
    with override_settings(WEB_LAYOUT=WebLayout(cores=2, processes=1, line_threads=3, inference_threads=2)):
        assert "--workers" not in process_command("web", options)
    with override_settings(WEB_LAYOUT=WebLayout(cores=8, processes=4, line_threads=3, inference_threads=2)):
        command = process_command("web", options)
        assert command[command.index("--workers") + 1] == "4"


def test_several_processes_share_their_metrics_in_an_emptied_folder(tmp_path):
    stale = tmp_path / "prometheus" / "counter_123.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    environ: dict[str, str] = {}
    shared_metrics_prepare(
        WebLayout(cores=2, processes=1, line_threads=3, inference_threads=2), tmp_path, environ
    )
    assert environ == {}
    shared_metrics_prepare(
        WebLayout(cores=8, processes=4, line_threads=3, inference_threads=2), tmp_path, environ
    )
    assert environ == {MULTIPROCESS_DIRECTORY_VARIABLE: str(tmp_path / "prometheus")}
    assert list((tmp_path / "prometheus").iterdir()) == []
    # A folder the deployment names is its own.
    chosen = {MULTIPROCESS_DIRECTORY_VARIABLE: "/srv/metrics"}
    shared_metrics_prepare(
        WebLayout(cores=8, processes=4, line_threads=3, inference_threads=2), tmp_path, chosen
    )
    assert chosen == {MULTIPROCESS_DIRECTORY_VARIABLE: "/srv/metrics"}
