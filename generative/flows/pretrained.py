"""The flows shipped with the package: two Glows and a C-Flow of grey 8x8 digits, a spline flow of the checkerboard.

Each is an ``mpenv-gen`` run directory in ``generative/assets/`` (``config.json`` with ``made_by``,
``checkpoint.pt`` with the best validation epoch's weights, the TensorBoard events of the training), made by
``python benchmarks/flow_assets.py <name>`` with the recipe its slow test used to train in CI, seed 0 and one
torch thread:

- ``digits_glow_uniform``, ``digits_glow_variational``: ``Glow((1, 8, 8), n_bins=17)`` with uniform or learned
  (variational) dequantization noise, 30 epochs of Adam 1e-3, batch 64;
- ``digits_cflow``: ``CFlow((1, 8, 8), levels=2, steps=2, hidden=32, features=16, n_bins=17)`` (partner: the 2x
  average-pooled digit), 50 epochs of Adam 2e-3, batch 64;
- ``checkerboard_spline_flow``: ``SplineFlow((2,), bins=16, tail_bound=3.0)`` on ``toy:checkerboard``, 140
  epochs at 5e-3 then 60 at 5e-4 (one Adam), batch 256.

The slow tests of ``tests/test_flows*.py`` evaluate them instead of training them in CI. They load through the run
loader (``generative.train.load_run``, ``weights_only=True``), so ``mpenv-gen eval generative/assets/digits_cflow``
evaluates one like any run.

    cflow = load_digits_flow("digits_cflow"); x = cflow.sample(16, temperature=0.7)
"""

from __future__ import annotations

from pathlib import Path

import torch

from generative.flows.cflow import CFlow
from generative.flows.glow import Glow
from generative.flows.spline_flow import SplineFlow
from generative.shipped import load_shipped_run, shipped_run_dir

__all__ = ["DIGITS_FLOWS", "TOY_FLOWS", "load_digits_flow", "load_toy_flow", "shipped_flow_dir"]

DIGITS_FLOWS = ("digits_glow_uniform", "digits_glow_variational", "digits_cflow")
"""The shipped flows of the grey digits: their asset folders."""
TOY_FLOWS = ("checkerboard_spline_flow",)
"""The shipped flows of 2D toy densities: their asset folders."""


def shipped_flow_dir(name: str) -> Path:
    """The run directory of the shipped flow ``name`` (one of :data:`DIGITS_FLOWS` or :data:`TOY_FLOWS`)."""
    return shipped_run_dir(name, DIGITS_FLOWS + TOY_FLOWS, "flow")


def load_digits_flow(name: str, device: torch.device | str = "cpu") -> Glow | CFlow:
    """The shipped digits flow ``name`` (one of :data:`DIGITS_FLOWS`), in eval mode; a fresh copy on every call."""
    return load_shipped_run(shipped_run_dir(name, DIGITS_FLOWS, "digits flow"), (Glow, CFlow), device)


def load_toy_flow(name: str, device: torch.device | str = "cpu") -> SplineFlow:
    """The shipped 2D flow ``name`` (one of :data:`TOY_FLOWS`), in eval mode; a fresh copy on every call."""
    return load_shipped_run(shipped_run_dir(name, TOY_FLOWS, "toy flow"), SplineFlow, device)
