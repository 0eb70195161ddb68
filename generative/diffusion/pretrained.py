"""The diffusion models shipped with the package: a DDPM and a class-conditional DDPM of binarized digits.

Both are ``mpenv-gen`` run directories in ``generative/assets/`` (``config.json``, ``checkpoint.pt`` with the
kept weights, the TensorBoard events of their training), made by ``python benchmarks/diffusion_assets.py ddpm``
and ``... ddpm-cond``: the package defaults (U-Net of 16 and 32 channels, T = 1000, linear schedule, eps
prediction, EMA 0.999) trained with seed 0, Adam 1e-3 and batch 64 for 300 epochs (``DDPM``) or 200 epochs with
label dropout 0.1 (``ConditionalDDPM``), keeping the best validation epoch's weights. They are loaded by the run
loader (``generative.train.load_run``, ``weights_only=True``), so ``mpenv-gen eval generative/assets/digits_ddpm``
evaluates one like any run, and ``ControlNet(..., base="generative/assets/digits_ddpm")`` builds on it.

    model = load_digits_ddpm(); x = model.sample(16, sampler="ddim", steps=50)
    cond = load_digits_ddpm(conditional=True); x = cond.sample(10, torch.arange(10), guidance=2.0)
"""

from __future__ import annotations

from pathlib import Path

import torch

from generative.diffusion.conditional import ConditionalDDPM
from generative.diffusion.ddpm import DDPM
from generative.shipped import ASSETS, load_shipped_run

__all__ = ["DIGITS_DDPM_DIRS", "digits_ddpm_dir", "load_digits_ddpm"]

DIGITS_DDPM_DIRS = {False: ASSETS / "digits_ddpm", True: ASSETS / "digits_ddpm_cond"}
"""``conditional`` -> the shipped run directory."""


def digits_ddpm_dir(conditional: bool = False) -> Path:
    """The run directory of the shipped (class-conditional) digits DDPM."""
    return DIGITS_DDPM_DIRS[bool(conditional)]


def load_digits_ddpm(conditional: bool = False, device: torch.device | str = "cpu") -> DDPM:
    """The shipped DDPM of binarized 8x8 digits (``conditional``: the ``ConditionalDDPM``), in eval mode; a fresh
    copy on every call."""
    model = load_shipped_run(digits_ddpm_dir(conditional), DDPM, device)
    expected = ConditionalDDPM if conditional else DDPM
    if type(model) is not expected:  # a ConditionalDDPM is a DDPM too
        raise ValueError(f"{digits_ddpm_dir(conditional)}: expected a {expected.__name__}, found "
                         f"{type(model).__name__}")  # fmt: skip
    return model
