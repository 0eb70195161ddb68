"""Fixtures shared by the test files."""

import pytest

from mpenv.device import torch_threads


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_process():
    """Every test runs on one torch thread: a learning test's numbers then do not depend on the machine's core
    count, and `make test`'s pytest-xdist workers (one per core) do not fight over the cores."""
    with torch_threads(1):
        yield


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``) tests spread over the workers one by one, except those that use a
    module-scoped fixture of their own file (a model trained once for the file): they stay on one worker, which then
    builds the fixture once."""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = fixtures.name2fixturedefs.values() if fixtures is not None else ()
        module_path = item.nodeid.split("::")[0]
        if any(d.scope != "function" and d.baseid == module_path for defs in definitions for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
