"""Which torch device trains: `"auto"` (CUDA when torch sees a GPU, else the CPU), `"cpu"`, `"cuda"`
or `"cuda:N"`. A named GPU that is not there is an error before any work starts, never a silent
fall-back to the CPU."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Cheap to import (the settings check a value against it); torch is imported when a device is made.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows),
    not every core of the host."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class DeviceUnavailable(RuntimeError):
    """The configured torch device does not exist on this machine."""


def torch_device(name: str) -> torch.device:
    """The torch device `name` asks for; `ValueError` for a name that is none of the above,
    `DeviceUnavailable` for a GPU this machine lacks."""
    import torch

    if not DEVICE_PATTERN.match(name):
        raise ValueError(f"torch device {name!r}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"torch device {name!r}: torch sees no CUDA GPU on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"torch device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
    return device
