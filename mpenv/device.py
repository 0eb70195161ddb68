"""The one place where every torch module of mpenv, agents, generative and vision3d picks its device
and seeds its random number generators.

    from mpenv.device import get_device, seed_everything, to_device
    device = get_device("auto")           # cuda, then mps, then cpu; MPENV_DEVICE=cpu overrides "auto"
    seed_everything(1)                    # python, numpy and torch (all devices)
    batch = to_device({"obs": obs_array, "act": act_array}, device)
    net = to_device(net, device, dtype=torch.float64)   # modules are moved and cast too
    with torch_threads(1): ...            # torch's CPU thread count inside the block, restored after

Device strings: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``. An explicit string wins over
``MPENV_DEVICE``; the variable only replaces ``"auto"``, so a script can be moved to a GPU without a
code change and a test can pin ``"cpu"`` whatever the environment says.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

ENV_VAR = "MPENV_DEVICE"
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device) -> None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(device)!r} was requested but CUDA is not available "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); use 'auto' or 'cpu'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(
                f"device {str(device)!r} was requested but only {count} CUDA device(s) exist "
                f"(valid: {', '.join(f'cuda:{i}' for i in range(count))})"
            )
    elif device.type == "mps" and not _mps_available():
        raise RuntimeError("device 'mps' was requested but MPS is not available on this machine; use 'auto' or 'cpu'")


def get_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device request to an available ``torch.device``.

    ``"auto"`` (or ``None``) uses ``$MPENV_DEVICE`` when set, else the first of cuda, mps, cpu that is
    available. Raises ``ValueError`` for a malformed string and ``RuntimeError`` for a device this
    machine does not have.
    """
    if isinstance(spec, torch.device):
        _check_available(spec)
        return spec
    requested = "auto" if spec is None else str(spec).strip().lower()
    source = "argument"
    if requested == "auto" and os.environ.get(ENV_VAR, "").strip():
        requested, source = os.environ[ENV_VAR].strip().lower(), f"${ENV_VAR}"
    if not _DEVICE_PATTERN.match(requested):
        raise ValueError(
            f"unknown device {requested!r} (from {source}); expected one of 'auto', 'cpu', 'cuda', "
            f"'cuda:N' or 'mps'"
        )
    if requested == "auto":
        return _auto_device()
    device = torch.device(requested)
    _check_available(device)
    return device


def seed_everything(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global state and torch (CPU and every CUDA device).

    With ``deterministic=True`` torch is also told to use only deterministic kernels (slower on GPUs,
    and an error for the few ops that have none), so that a run is bit-for-bit repeatable on the same
    hardware. Returns a fresh ``np.random.Generator`` seeded with ``seed`` for code that prefers an
    explicit generator over global state.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (legacy global state is what seeding must cover)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS needs this workspace setting before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def to_device(batch: Any, device: torch.device | str, dtype: torch.dtype | None = None) -> Any:
    """Move a tensor, a NumPy array, an ``nn.Module``, or a dict/list/tuple nesting of them to ``device``.

    ``dtype`` casts floating data only: floating tensors and arrays, and a module's floating parameters and
    buffers (``nn.Module.to(device, dtype)``; integer buffers such as a step counter keep their type). NumPy
    arrays become tensors; other leaves (ints, strings, None) pass through unchanged, so info dicts can be
    moved whole. A module is moved in place, as ``nn.Module.to`` does, and returned.
    """
    device = get_device(device) if isinstance(device, str) else device
    if isinstance(batch, torch.nn.Module):
        return batch.to(device) if dtype is None else batch.to(device, dtype)
    if isinstance(batch, torch.Tensor):
        moved = batch.to(device, non_blocking=True)
        return moved.to(dtype) if dtype is not None and moved.is_floating_point() else moved
    if isinstance(batch, np.ndarray):
        return to_device(torch.from_numpy(np.ascontiguousarray(batch)), device, dtype)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device, dtype) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # NamedTuple keeps its type
        return type(batch)(*(to_device(value, device, dtype) for value in batch))
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return type(batch)(to_device(value, device, dtype) for value in batch)
    return batch


def uniform(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """``U[0, 1)`` draws on ``device``, made on the generator's own device and moved: a seeded CPU generator, whose
    state a checkpoint can store, then drives a CUDA run the same way (torch refuses a CPU generator for a CUDA
    tensor)."""
    return torch.rand(tuple(shape), generator=generator, device=draw_device(generator, device), dtype=dtype).to(device)


def draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device | str:
    """Where random numbers for ``device`` must be drawn: on the generator's own device when one is given."""
    return generator.device if generator is not None else device


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module with neither)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``threads`` inside the block and restored after (``None`` or 0: unchanged).

    Small networks run fastest on one thread (the CLIs' default), and one thread also keeps torch out of GNU
    OpenMP's thread team, which is not fork-safe: a process forked after a parallel region hangs in its next one.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
