"""The packages' lazy re-exports: ``from vision3d.body import BodyModel`` works, every re-exported name is the
submodule's own object, and importing the packages imports no torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import vision3d
import vision3d.body as body
from mpenv.lazy import home_modules


def test_importing_the_packages_imports_no_torch_until_a_name_is_used():
    code = (
        "import sys, mpenv, vision3d, vision3d.body\n"
        "names = dir(vision3d.body) + dir(vision3d)\n"
        "print('torch' in sys.modules, 'BodyModel' in names, 'body' in names)\n"
        "from vision3d.body import BodyModel\n"
        "print('torch' in sys.modules, BodyModel.__module__)"
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True", "vision3d.body.model"]


@pytest.mark.parametrize("name", sorted(home_modules(body._EXPORTS)))
def test_every_reexported_name_is_its_submodules_public_object(name):
    home = importlib.import_module(f"vision3d.body.{home_modules(body._EXPORTS)[name]}")
    assert getattr(body, name) is getattr(home, name)
    assert name in getattr(home, "__all__", [name]), f"{name} is not public in {home.__name__}"
    assert name in body.__all__ and name in dir(body)


def test_short_imports_of_the_readme():
    from vision3d.body import (  # noqa: F401  (the import is the test)
        BodyModel,
        FitConfig,
        Motion,
        axis_angle_to_matrix,
        bvh_to_motion,
        deepmimic_to_motion,
        fit_to_keypoints,
        forward_kinematics,
        load_clip,
    )
    from vision3d.body.model import BodyModel as HomeBodyModel

    assert BodyModel is HomeBodyModel and vision3d.body is body


def test_submodules_and_unknown_names():
    for name in [m for m in body.__all__ if m not in home_modules(body._EXPORTS)]:
        assert getattr(body, name) is importlib.import_module(f"vision3d.body.{name}")
    assert callable(body.lbs.lbs) and callable(body.retarget.retarget)  # the modules keep these names
    with pytest.raises(AttributeError, match="vision3d.body.*no attribute 'SMPL'"):
        body.SMPL  # noqa: B018  (the access is the test)
    with pytest.raises(AttributeError, match="'vision3d' has no attribute 'teapot'"):
        vision3d.teapot  # noqa: B018
