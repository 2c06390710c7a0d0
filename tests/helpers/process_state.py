"""A pytest plugin (``tests/conftest.py`` loads it): each test ends with the process state it began with.

Why: a test that runs a stage in process (``run_training`` applies the run's numerics before it builds
the Trainer) sets the process's environment (``ATEN_CPU_CAPABILITY``, ``MKL_CBWR``,
``ONEDNN_MAX_CPU_ISA``, ``CUBLAS_WORKSPACE_CONFIG``) and torch's deterministic-algorithms switch.
Left behind, they reach every later test of that xdist worker and every script such a test starts,
so a test's outcome would depend on which tests ran before it in the same worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def restore_process_state() -> Iterator[None]:
    """Snapshot ``os.environ`` and torch's deterministic switch before the test; put them back after."""
    environ = dict(os.environ)
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    for name in set(os.environ) - set(environ):
        del os.environ[name]
    for name, value in environ.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
