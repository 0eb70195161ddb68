"""Train the diffusion models shipped in ``generative/assets/`` (what ``tests/test_diffusion_learning.py`` checks,
``generative.diffusion.load_digits_ddpm`` and ``load_digits_controlnet`` load).

    python benchmarks/diffusion_assets.py ddpm        # -> generative/assets/digits_ddpm/        (~7 CPU-min)
    python benchmarks/diffusion_assets.py ddpm-cond   # -> generative/assets/digits_ddpm_cond/   (~5 CPU-min)
    python benchmarks/diffusion_assets.py controlnet  # -> generative/assets/digits_controlnet/  (~1.5 CPU-min)
    python benchmarks/diffusion_assets.py eight-gaussians  # -> generative/assets/eight_gaussians_ddpm/  (~1 CPU-min)

The recipe is the one the learning tests used to run in CI, step for step (the same calls in the same order,
so on one CPU thread, the same machine and torch, the weights are bit for bit the ones those tests trained:
checked for 2 epochs of each): seed 0, the package defaults on binarized
digits (``DDPM((1, 8, 8), n_bins=2)``: U-Net of 16 and 32 channels, T = 1000, linear schedule, eps prediction,
EMA 0.999), ``generative.fit.fit`` with Adam 1e-3, batch 64, no early stop (patience = epochs), keeping the best
validation epoch's weights; 300 epochs for ``ddpm``, 200 for ``ddpm-cond`` (``ConditionalDDPM``, label dropout
0.1), 40 for ``controlnet`` (``ControlNet((1, 8, 8), <the shipped digits_ddpm>, control="mask")``: a coarse-mask
control on the frozen shipped DDPM, which must be made first). ``eight-gaussians`` is the 2D model of
``tests/test_diffusion.py``: ``DDPM((2,), schedule="cosine")`` on ``toy:eight_gaussians``, batch 256, 200 epochs
at 1e-3 and 100 more at 1e-4 with one Adam (``fit_phases``). Each output folder is an ``mpenv-gen`` run
directory: ``config.json``, ``checkpoint.pt`` (only the kept weights, the network and its average: no optimizer
state, so it cannot be resumed; the ControlNet's include its frozen base, as the run loader loads every weight)
and the TensorBoard events of the run (``loss/train``, ``loss/val`` per epoch), so ``mpenv-gen eval
generative/assets/digits_ddpm`` and ``generative.train.load_run`` read it like any run (the ControlNet's config
names its base by the path from the repository root, as ``mpenv-gen train controlnet`` does, so the run loader
reads it from there; ``load_digits_controlnet`` from anywhere).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from generative import data
from generative.diffusion import DDPM, ConditionalDDPM, ControlNet, load_digits_ddpm
from generative.fit import FitHistory, fit, fit_phases
from mpenv.checkpoint import save_torch
from mpenv.device import seed_everything
from mpenv.logger import RunLogger

ASSETS = Path(__file__).resolve().parents[1] / "generative" / "assets"
RECIPES: dict[str, dict[str, Any]] = {
    "ddpm": {"epochs": 300, "folder": "digits_ddpm", "model_kwargs": {"n_bins": 2}},
    "ddpm-cond": {"epochs": 200, "folder": "digits_ddpm_cond", "model_kwargs": {"n_bins": 2}},
    "controlnet": {"epochs": 40, "folder": "digits_controlnet",
                   "model_kwargs": {"base": "generative/assets/digits_ddpm", "control": "mask"}},
    "eight-gaussians": {"epochs": 300, "folder": "eight_gaussians_ddpm", "model": "ddpm", "data": "toy:eight_gaussians",
                        "model_kwargs": {"schedule": "cosine"}, "input_shape": [2], "batch_size": 256,
                        "phases": [[200, 1e-3], [100, 1e-4]], "patience": 1000},
}  # fmt: skip
"""name -> epochs, asset folder and the model's keyword arguments (the ControlNet's base: the shipped DDPM); the
2D model also its data, shape, batch size, patience and learning-rate phases (the others: digits, Adam 1e-3)."""


def recipe_config(name: str) -> dict[str, Any]:
    """The ``config.json`` of the asset ``name`` (what ``mpenv-gen train`` would write for the same run)."""
    recipe = RECIPES[name]
    epochs, model, source = recipe["epochs"], recipe.get("model", name), recipe.get("data", "digits-binary")
    config = {"model": model, "model_kwargs": recipe["model_kwargs"], "data": source, "binarize": "none",
              "seed": 0, "epochs": epochs, "batch_size": recipe.get("batch_size", 64), "learning_rate": 1e-3,
              "patience": recipe.get("patience", epochs), "input_shape": recipe.get("input_shape", [1, 8, 8]),
              "algo": model, "env_id": source, "made_by": f"python benchmarks/diffusion_assets.py {name}",
              "torch": torch.__version__}  # fmt: skip
    if "phases" in recipe:  # [epochs, learning rate] in turn, one Adam throughout (generative.fit.fit_phases)
        config["phases"] = recipe["phases"]
    return config


def train(name: str, epochs: int | None = None,
          on_epoch: Callable[[FitHistory], None] | None = None) -> tuple[nn.Module, FitHistory]:  # fmt: skip
    """The tests' training call for call (``epochs`` shortens it, for the bit-equality check; ``on_epoch`` only
    logs: it draws no random numbers, so training is unchanged)."""
    epochs = RECIPES[name]["epochs"] if epochs is None else epochs
    if name == "eight-gaussians":  # tests/test_diffusion.py's old order: data, seed, model, the two phases
        train_split, val_split, _ = data.load("toy:eight_gaussians", seed=0)
        torch.manual_seed(0)
        model = DDPM((2,), schedule="cosine")
        phases, done = [], 0
        for phase_epochs, lr in RECIPES[name]["phases"]:  # cut to ``epochs`` in all
            phases.append((min(phase_epochs, epochs - done), lr))
            done += phases[-1][0]
        phases = [(e, lr) for e, lr in phases if e > 0]
        return model, fit_phases(model, train_split, val_split, phases, batch_size=256, on_epoch=on_epoch)
    # The tests' order of calls: data first (and the ControlNet's base, the test's second fixture), then the seed,
    # the model and fit (fit's own seed, 0, orders batches).
    if name == "ddpm-cond":
        (train_x, train_y), (val_x, val_y), _ = data.load("digits-binary", seed=0, labels=True)
        train_split, val_split = (train_x, train_y), (val_x, val_y)
    else:
        train_split, val_split, _ = data.load("digits-binary", seed=0)
    base = load_digits_ddpm() if name == "controlnet" else None
    seed_everything(0)
    if name == "controlnet":
        model = ControlNet((1, 8, 8), base, control=RECIPES[name]["model_kwargs"]["control"])
    else:
        model = ConditionalDDPM((1, 8, 8), n_bins=2) if name == "ddpm-cond" else DDPM((1, 8, 8), n_bins=2)
    history = fit(model, train_split, val_split, epochs=epochs, patience=epochs, on_epoch=on_epoch)
    return model, history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=list(RECIPES))
    parser.add_argument("--out", default=None, help="output folder (default: generative/assets/<folder>)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else ASSETS / RECIPES[args.model]["folder"]
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # as in the tests (tests/conftest.py): the weights depend on the thread count
    config = recipe_config(args.model)
    start = time.process_time()
    with RunLogger(out, config, total_steps=config["epochs"], progress=False) as log:

        def on_epoch(h: FitHistory) -> None:  # logging only: no random numbers drawn, so training is unchanged
            log.log("loss/train", h.train_loss[-1], h.epochs)
            log.log("loss/val", h.val_loss[-1], h.epochs)
            if h.epochs % 10 == 0:
                print(f"epoch {h.epochs}: train {h.train_loss[-1]:.4f} val {h.val_loss[-1]:.4f} "
                      f"({time.process_time() - start:.0f} CPU s)", flush=True)  # fmt: skip

        model, history = train(args.model, on_epoch=on_epoch)
    # model holds the best epoch's weights (fit loads them); the run loader reads "best_model", else "model"
    save_torch(out, {"step": history.epochs, "modules": {"model": model.state_dict()},
                     "extra": {"best_epoch": history.best_epoch, "train_loss": history.train_loss,
                               "val_loss": history.val_loss, "cpu_seconds": time.process_time() - start}})  # fmt: skip
    print(f"{args.model}: {history.epochs} epochs, best validation loss {history.best_val_loss:.4f} at epoch "
          f"{history.best_epoch + 1}, {time.process_time() - start:.0f} CPU s; wrote {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
