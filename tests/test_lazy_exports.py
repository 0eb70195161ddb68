"""Every package's lazy re-exports: importing a package loads no torch, the first name used loads its home
submodule, and every re-exported name is that submodule's own public object. ``vision3d.body`` has its own file
(``test_body_imports.py``) with the README's imports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from mpenv.lazy import home_modules

PACKAGES = ("agents", "generative", "mpenv.nn", "vision3d.implicit", "vision3d.nerf", "vision3d.scenes",
            "vision3d.splatting")


def export_table(package: str) -> dict[str, str]:
    """Each re-exported name -> the full name of the submodule that defines it. The tables come in two shapes
    (``{submodule: names}``, ``generative``'s ``{name: module}``) and with short or full module names."""
    exports = importlib.import_module(package)._EXPORTS
    table = dict(exports) if all(isinstance(v, str) for v in exports.values()) else home_modules(exports)
    return {name: m if m.startswith(f"{package}.") else f"{package}.{m}" for name, m in table.items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_the_package_loads_no_torch_until_a_name_is_used(package):
    # The first function or class (constants such as mpenv.nn's ACTIVATIONS have no __module__).
    name, home = next((n, h) for n, h in sorted(export_table(package).items()) if not n.isupper())
    code = (
        f"import sys, {package} as m\n"
        f"print('torch' in sys.modules, {name!r} in dir(m))\n"
        f"print(getattr(m, {name!r}).__module__)"
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", home]


@pytest.mark.parametrize(
    ("package", "name"),
    [(p, n) for p in PACKAGES for n in sorted(export_table(p))],
)
def test_every_reexported_name_is_its_submodules_public_object(package, name):
    module = importlib.import_module(package)
    home = importlib.import_module(export_table(package)[name])
    assert getattr(module, name) is getattr(home, name)
    assert name in getattr(home, "__all__", [name]), f"{name} is not public in {home.__name__}"
    assert name in module.__all__ and name in dir(module)
