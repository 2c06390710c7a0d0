"""One torch thread for in-process tests of tiny models: fastest, least hurt by a busy machine,
and the thread count is then not a variable of the test.

A module opts in by importing the autouse fixture: ``from helpers.threads import one_thread  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
