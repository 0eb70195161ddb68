"""Fixtures shared by the test files."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Small networks run fastest on one thread, and on a busy 2-core machine a thread pool only waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
