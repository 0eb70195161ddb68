"""The diffusion models shipped with the package: a DDPM and a class-conditional DDPM of binarized digits, and a
ControlNet on the DDPM.

All are ``mpenv-gen`` run directories in ``generative/assets/`` (``config.json``, ``checkpoint.pt`` with the
kept weights, the TensorBoard events of their training), made by ``python benchmarks/diffusion_assets.py ddpm``
and ``... ddpm-cond``: the package defaults (U-Net of 16 and 32 channels, T = 1000, linear schedule, eps
prediction, EMA 0.999) trained with seed 0, Adam 1e-3 and batch 64 for 300 epochs (``DDPM``) or 200 epochs with
label dropout 0.1 (``ConditionalDDPM``), keeping the best validation epoch's weights. They are loaded by the run
loader (``generative.train.load_run``, ``weights_only=True``), so ``mpenv-gen eval generative/assets/digits_ddpm``
evaluates one like any run, and ``ControlNet(..., base="generative/assets/digits_ddpm")`` builds on it.

The ControlNet (``... diffusion_assets.py controlnet``) is ``ControlNet((1, 8, 8), <the shipped DDPM>,
control="mask")`` trained 40 epochs (seed 0, Adam 1e-3, batch 64, the best validation epoch's weights): it samples
digits that fill a coarse 2x2-block mask. Its config names the base by its path from the repository root (as
``mpenv-gen train controlnet`` records the ``base`` it was given), so ``mpenv-gen eval
generative/assets/digits_controlnet`` runs from there; ``load_digits_controlnet`` builds it on the shipped DDPM
from any directory. Its checkpoint holds the frozen base's weights too (the run loader loads every weight).

    model = load_digits_ddpm(); x = model.sample(16, sampler="ddim", steps=50)
    cond = load_digits_ddpm(conditional=True); x = cond.sample(10, torch.arange(10), guidance=2.0)
    cn = load_digits_controlnet(); x = cn.sample(16, cn.control_of(digits[:16]), sampler="ddim", steps=50)
"""

from __future__ import annotations

from pathlib import Path

import torch

from generative.diffusion.conditional import ConditionalDDPM
from generative.diffusion.controlnet import ControlNet
from generative.diffusion.ddpm import DDPM
from generative.shipped import ASSETS, load_shipped_run
from mpenv.checkpoint import CheckpointError, load_config, load_state_dict_checked, load_torch

__all__ = ["DIGITS_CONTROLNET_DIR", "DIGITS_DDPM_DIRS", "EIGHT_GAUSSIANS_DDPM_DIR", "digits_ddpm_dir",
           "load_digits_controlnet", "load_digits_ddpm", "load_eight_gaussians_ddpm"]

DIGITS_DDPM_DIRS = {False: ASSETS / "digits_ddpm", True: ASSETS / "digits_ddpm_cond"}
"""``conditional`` -> the shipped run directory."""
DIGITS_CONTROLNET_DIR = ASSETS / "digits_controlnet"
"""The shipped ControlNet's run directory (its base: ``DIGITS_DDPM_DIRS[False]``)."""
EIGHT_GAUSSIANS_DDPM_DIR = ASSETS / "eight_gaussians_ddpm"
"""The shipped 2D DDPM of the eight Gaussians (cosine schedule)."""


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


def load_digits_controlnet(device: torch.device | str = "cpu") -> ControlNet:
    """The shipped coarse-mask ControlNet on the shipped digits DDPM, in eval mode; a fresh copy on every call.

    The run loader's checks (the config names the model, the weights fit it exactly: ``weights_only=True``,
    every key and shape), with the base taken from the shipped DDPM's folder rather than the config's
    repository-relative path, so it loads from any working directory."""
    run_dir = DIGITS_CONTROLNET_DIR
    config = load_config(run_dir)
    kwargs = dict(config.get("model_kwargs", {}))
    if config.get("model") != "controlnet" or kwargs.pop("base", None) != "generative/assets/digits_ddpm":
        raise CheckpointError(f"{run_dir}: expected a controlnet on generative/assets/digits_ddpm, found "
                              f"{config.get('model')} with {config.get('model_kwargs')}")  # fmt: skip
    model = ControlNet(tuple(config["input_shape"]), load_digits_ddpm(device=device), **kwargs).to(device)
    load_state_dict_checked(model, load_torch(run_dir)["modules"]["model"], str(run_dir))
    return model.eval()


def load_eight_gaussians_ddpm(device: torch.device | str = "cpu") -> DDPM:
    """The shipped 2D DDPM of the eight Gaussians (``DDPM((2,), schedule="cosine")``, 200 epochs at 1e-3 and 100
    at 1e-4, batch 256, seed 0, the best validation epoch's weights), in eval mode; a fresh copy on every call."""
    return load_shipped_run(EIGHT_GAUSSIANS_DDPM_DIR, DDPM, device)
