"""Devices: the one place a device name is checked. A run, a training stage or an
evaluation names its device once; it reaches the workers in their settings and nowhere
else."""

from __future__ import annotations

import re

from deepphoenix.errors import ConfigError

__all__ = ["DEVICE_HELP", "check_device"]

DEVICE_HELP = "auto (CUDA when a GPU is visible, else CPU), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device(spec: object) -> str:
    """`spec` if it names a device; `ConfigError` (naming it) otherwise."""
    if isinstance(spec, str) and _DEVICE.match(spec):
        return spec
    raise ConfigError(f"Expected {DEVICE_HELP} but got device={spec!r} "
                      f"(type={type(spec).__name__})")
