"""Fixtures shared by the test files."""

import pytest

from mpenv.device import torch_threads


@pytest.fixture
def one_torch_thread():
    """Small networks run fastest on one thread, and on a busy 2-core machine a thread pool only waits."""
    with torch_threads(1):
        yield
