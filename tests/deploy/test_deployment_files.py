"""The deployment files in step with the processes and settings they start: the systemd units,
the compose file and the Dockerfile run `manage.py serve ROLE` for every role of
config.processes and for nothing else; the nginx site is valid once filled in; the environment
example names only settings Loupe reads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.processes import ROLES
from deploy.topology import LocalProduction

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPOSITORY = DEPLOY.parent


def _systemd_roles() -> dict[str, str]:
    roles = {}
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        match = re.search(r"^ExecStart=\S+ manage\.py serve (\w+)", unit.read_text(), re.MULTILINE)
        assert match, f"{unit.name} does not start `manage.py serve ROLE`"
        roles[unit.name] = match.group(1)
    return roles


def test_every_role_has_one_systemd_unit_and_beat_is_not_a_template():
    roles = _systemd_roles()
    assert sorted(roles.values()) == sorted(ROLES)
    beat = [name for name, role in roles.items() if role == "beat"]
    assert beat == ["loupe-beat.service"]  # not loupe-beat@: one beat per installation
    target = (DEPLOY / "systemd" / "loupe.target").read_text()
    for name in roles:
        if "@" not in name:
            assert name in target, f"loupe.target does not pull in {name}"


def test_the_compose_file_runs_the_same_roles_with_one_beat():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    roles = {}
    for name, service in services.items():
        if service.get("image", "").startswith("loupe") or "build" in service:
            command = service.get("command") or []
            if command:
                roles[name] = command[0]
    assert sorted(roles.values()) == sorted(ROLES)
    beat = [name for name, role in roles.items() if role == "beat"]
    assert len(beat) == 1 and services[beat[0]].get("deploy", {}).get("replicas", 1) == 1
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    assert 'ENTRYPOINT [".venv/bin/python", "manage.py", "serve"]' in dockerfile


def test_the_environment_example_names_only_settings_loupe_reads():
    read = "".join(path.read_text() for path in (REPOSITORY / "config").rglob("*.py"))
    names = [
        line.split("=", 1)[0]
        for line in (DEPLOY / "loupe.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert names
    unread = [name for name in names if f'"{name}"' not in read]
    assert unread == []


def test_the_nginx_site_is_valid_once_filled_in(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("no nginx: apt-get install nginx (.ci/run does)")
    topology = LocalProduction(tmp_path)
    topology.root.mkdir(parents=True, exist_ok=True)
    (topology.root / "logs").mkdir()
    topology._certificate_make()
    topology._nginx_define()
    site = (topology.root / "nginx" / "loupe.conf").read_text()
    assert "@" not in site.replace("$remote_addr", "")  # every placeholder filled in
    command = topology.services["nginx"].command
    checked = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
