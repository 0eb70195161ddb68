"""Fixtures shared by the test files."""

import importlib.util
from pathlib import Path

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


@pytest.fixture(scope="session")
def benchmark_script():
    """Loads a script of ``benchmarks/`` as a module, for tests of its recipes and output:
    ``benchmark_script("gan_assets").RECIPES``."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def fitted_blocks_view():
    """400 random Gaussians in the box [-1, 1]^3 around `blocks`, fitted by L1 for 150 Adam steps to one 32x32 view
    at 3DGS's learning rates (the means' relative to the camera distance 3.5), with the gradient statistics gathered
    on the way. Degree-0 colour: one view cannot constrain view dependence. Shared by the render and density tests.

    Returns a dict: ``gaussians`` (detached), ``stats``, ``camera``, ``background``, ``target``, ``initial_image``
    and ``image`` (renders before and after fitting)."""
    import torch

    from vision3d.scenes.library import scene_views
    from vision3d.splatting.density import GradientStats
    from vision3d.splatting.gaussians import random_gaussians_in_box
    from vision3d.splatting.render import render_gaussians

    train, _ = scene_views("blocks", 1, 1, 32, seed=0)
    camera, target = train.cameras[0], train.rgb[0]
    background = torch.tensor(train.background, dtype=torch.float32)
    gaussians = random_gaussians_in_box(400, -1.0, 1.0, sh_degree=0, generator=torch.Generator().manual_seed(0))
    gaussians.requires_grad_()
    rates = {"means": 1.6e-4 * 3.5, "log_scales": 5e-3, "quaternions": 1e-3, "opacity_logits": 5e-2, "sh": 2.5e-3}
    optimizer = torch.optim.Adam([{"params": [t], "lr": rates[n]} for n, t in gaussians.parameters().items()],
                                 eps=1e-15)
    stats = GradientStats.zeros(len(gaussians))
    with torch.no_grad():
        initial_image = render_gaussians(gaussians, camera, background).image
    for _ in range(150):
        out = render_gaussians(gaussians, camera, background)
        out.means2d.retain_grad()
        loss = (out.image - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stats.accumulate(out.means2d.grad, out.radii, camera.width, camera.height)
    gaussians = gaussians.detach()
    with torch.no_grad():
        image = render_gaussians(gaussians, camera, background).image
    return {"gaussians": gaussians, "stats": stats, "camera": camera, "background": background, "target": target,
            "initial_image": initial_image, "image": image}
