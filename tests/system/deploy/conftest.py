"""The deploy tests' throw-away services: one loopback stack per test module, stopped afterwards."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.system.deploy.stack import Stack


@pytest.fixture(scope="module")
def stack():
    workdir = Path(tempfile.mkdtemp(prefix="offerrank-stack-"))  # not under pytest's 0700 tmp: postgres must read it
    os.chmod(workdir, 0o755)
    services = Stack(workdir)
    yield services
    services.stop()
