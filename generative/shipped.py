"""The trained models shipped in ``generative/assets/``: one place that finds and loads them.

Each shipped model is an ``mpenv-gen`` run directory (``config.json`` with ``made_by``, the script and arguments
that trained it; ``checkpoint.pt``; the TensorBoard events of the training), loaded through the CLI's run loader
(``generative.train.load_run``: ``weights_only=True``, the config and the weights' keys and shapes checked), so
``mpenv-gen eval generative/assets/<folder>`` evaluates one like any run. The families' loaders
(``load_digits_ddpm``, ``load_digits_gan``, ``load_digits_flow``) name their folders and expected classes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["ASSETS", "load_shipped_run", "shipped_run_dir"]

ASSETS = Path(__file__).resolve().parent / "assets"


def shipped_run_dir(folder: str, known: tuple[str, ...], family: str) -> Path:
    """``generative/assets/<folder>``, where ``folder`` is one of a family's ``known`` folders."""
    if folder not in known:
        raise ValueError(f"unknown shipped {family} {folder!r}; one of: {', '.join(known)}")
    return ASSETS / folder


def load_shipped_run(run_dir: Path, expected: type | tuple[type, ...], device: torch.device | str = "cpu") -> nn.Module:
    """The model of the shipped run ``run_dir``, in eval mode, checked to be an ``expected`` instance; a fresh copy
    on every call."""
    from generative.train import load_run  # the CLI's loader, imported late: it pulls in every model family

    model, _ = load_run(str(run_dir), torch.device(device))
    if not isinstance(model, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise ValueError(f"{run_dir}: expected a {names}, found {type(model).__name__}")
    return model.eval()
