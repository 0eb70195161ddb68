"""``vision3d.splatting`` re-exports its main names lazily: importing the package loads no torch, and each name is
its home submodule's public object."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from mpenv.lazy import home_modules
from vision3d import splatting


def test_importing_the_package_loads_no_torch():
    code = (
        "import sys, vision3d.splatting as m\n"
        "print('torch' in sys.modules, 'rasterize' in dir(m))\n"
        "from vision3d.splatting import project_gaussians\n"
        "print('torch' in sys.modules, project_gaussians.__module__)"
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "vision3d.splatting.projection"]


@pytest.mark.parametrize("name", sorted(home_modules(splatting._EXPORTS)))
def test_every_reexported_name_is_its_submodules_public_object(name):
    home = importlib.import_module(f"vision3d.splatting.{home_modules(splatting._EXPORTS)[name]}")
    assert getattr(splatting, name) is getattr(home, name)
    assert name in home.__all__ and name in splatting.__all__ and name in dir(splatting)
