"""deploy.topology's process handling, without starting the topology: a process it starts from a
short-lived thread (a fault drill's) outlives that thread, and `kill` takes its whole group."""

from __future__ import annotations

import os
import threading
import time

from deploy.topology import LocalProduction, Service


def test_a_process_started_from_a_thread_that_ends_keeps_running_and_kill_takes_it(tmp_path):
    topology = LocalProduction(tmp_path)
    (tmp_path / "logs").mkdir()
    topology.services["sleeper"] = Service(
        "sleeper", ["sleep", "60"], {"PATH": os.environ["PATH"]}, tmp_path / "logs" / "sleeper.log"
    )
    starter = threading.Thread(target=topology.start, args=("sleeper",))
    starter.start()
    starter.join()
    time.sleep(1.0)  # the parent-death signal would have come when the starter thread ended
    try:
        assert topology.services["sleeper"].running
    finally:
        topology.kill("sleeper")
    assert not topology.services["sleeper"].running
    topology.down()
