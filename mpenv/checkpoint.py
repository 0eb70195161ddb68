"""Saving and loading checkpoints, treating every file as untrusted input.

A tabular checkpoint is a run directory holding ``checkpoint.npz`` (plain numeric arrays, loaded with
``allow_pickle=False`` so a crafted file cannot run code) and ``config.json`` (what the run was: the
algorithm, the env id and kwargs, the hyperparameters). Both are written through a temporary file and
an atomic rename, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ARRAYS_FILE = "checkpoint.npz"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def save_arrays(run_dir: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` into ``run_dir`` atomically; returns the ``.npz`` path. The run's
    ``config.json`` beside it is written when the run starts (:class:`mpenv.logger.RunLogger`)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / ARRAYS_FILE
    tmp = run_dir / (ARRAYS_FILE + ".tmp")
    with open(tmp, "wb") as handle:  # a file handle keeps numpy from appending another ".npz"
        np.savez(handle, **{name: np.asarray(value) for name, value in arrays.items()})
    os.replace(tmp, target)
    return target


def resolve(path: str | Path) -> Path:
    """The ``.npz`` of a run directory, or the ``.npz`` given."""
    path = Path(path)
    if path.is_dir():
        path = path / ARRAYS_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (expected a run directory or its {ARRAYS_FILE})")
    return path


def load_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory (or of the directory holding a checkpoint file)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (expected a run directory or a checkpoint file in one)")
    config_path = (path if path.is_dir() else path.parent) / CONFIG_FILE
    if not config_path.exists():
        raise CheckpointError(f"{config_path}: missing; a checkpoint needs its {CONFIG_FILE} beside it")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path}: not a readable JSON config ({err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object, found {type(config).__name__}")
    return config


def load_arrays(path: str | Path, required: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Load the numeric arrays of a checkpoint.

    ``required`` maps array names to their number of dimensions; a missing name, a wrong rank or a
    non-numeric array raises ``CheckpointError`` naming the file.
    """
    npz_path = resolve(path)
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{npz_path}: not a readable checkpoint ({err})") from err
    for name, ndim in (required or {}).items():
        if name not in arrays:
            raise CheckpointError(f"{npz_path}: missing array {name!r} (found: {sorted(arrays)})")
        if arrays[name].ndim != ndim:
            raise CheckpointError(
                f"{npz_path}: array {name!r} has shape {arrays[name].shape}, expected {ndim} dimension(s)"
            )
    for name, array in arrays.items():
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise CheckpointError(f"{npz_path}: array {name!r} has non-numeric dtype {array.dtype}")
    return arrays


# ---------------------------------------------------------------------------------------------------
# Torch checkpoints of the deep agents: state dicts only, loaded with weights_only=True

TORCH_FILE = "checkpoint.pt"


def save_torch(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, state dicts, numbers, strings) to ``run_dir/checkpoint.pt`` through a
    temporary file and an atomic rename: a crash or Ctrl-C mid-save keeps the previous checkpoint."""
    import torch

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target, tmp = run_dir / TORCH_FILE, run_dir / (TORCH_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, target)
    return target


def load_torch(path: str | Path, required: tuple[str, ...] = ("step", "modules")) -> dict[str, Any]:
    """Load a deep agent's checkpoint without running any code from the file (``weights_only=True``);
    ``path`` is a run directory or the ``checkpoint.pt`` in one."""
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        path = path / TORCH_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (expected a run directory or its {TORCH_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of state, found {type(state).__name__}")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"{path}: missing {missing} (found: {sorted(state)})")
    return state


def load_state_dict_checked(module: Any, state_dict: dict[str, Any], source: str) -> None:
    """``module.load_state_dict`` with an error that names the file and the mismatching entries."""
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{source}: weights do not fit the network ({str(err).splitlines()[0]})") from err


def load_weights_checked(path: str | Path, module: Any, what: str = "weights") -> None:
    """Load the state dict at ``path`` (``weights_only=True``) into ``module`` after checking it: a dict with
    exactly the module's keys, tensors of the module's shapes, all finite. Anything else is a
    :class:`CheckpointError` naming the file and what is wrong."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (pickle, zip, OS): all mean "not a checkpoint"
        raise CheckpointError(f"{path}: cannot load the {what} ({err})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: the {what} do not match the network (missing {missing}, "
                              f"unexpected {unexpected})")
    for key, tensor in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path}: {key} should have shape {tuple(tensor.shape)}, got {got}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: {key} has NaN or infinite values")
    module.load_state_dict(state)
