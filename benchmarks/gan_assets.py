"""Train the GANs shipped in ``generative/assets/`` (what the slow tests of ``tests/test_gans.py`` evaluate).

    python benchmarks/gan_assets.py dcgan          # -> generative/assets/digits_dcgan/         (~40 CPU-s)
    python benchmarks/gan_assets.py stylegan       # -> generative/assets/digits_stylegan/      (~30 CPU-s)

The recipe is the one those tests used to run in CI, call for call (data first, then ``torch.manual_seed(0)``,
the model with the package defaults and ``fit_gan`` with its defaults: Adam 2e-4, batch 64, batch order seed 0,
one torch thread), so on the same machine and torch the weights are bit for bit the ones the tests trained:
``DCGAN((1, 8, 8))`` for 60 epochs on grey digits (``dcgan``),
``StyleGAN((1, 8, 8), ema_decay=0.99)`` for 30 epochs on grey digits (``stylegan``). Each output folder is an
``mpenv-gen`` run directory: ``config.json`` (with ``made_by``), ``checkpoint.pt`` (the final weights, no
optimizer state) and the TensorBoard events of the run (the players' losses per epoch), so
``mpenv-gen eval generative/assets/digits_dcgan`` and ``generative.train.load_run`` read it like any run.

The binarized-digits DCGAN test still trains its own: a copy made this way scored FD 100.6 against the 40.7 the
test measures when it trains the DCGAN after fitting its VAE, so the two runs differ and that one is not shipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from generative import data
from generative.gans import DCGAN, StyleGAN, fit_gan
from generative.gans.train import GANHistory
from mpenv.checkpoint import save_torch
from mpenv.logger import RunLogger

ASSETS = Path(__file__).resolve().parents[1] / "generative" / "assets"
RECIPES: dict[str, dict[str, Any]] = {
    "dcgan": {"model": "dcgan", "data": "digits", "epochs": 60, "model_kwargs": {}, "folder": "digits_dcgan"},
    "stylegan": {"model": "stylegan", "data": "digits", "epochs": 30, "model_kwargs": {"ema_decay": 0.99},
                 "folder": "digits_stylegan"},
}  # fmt: skip
"""name -> the ``mpenv-gen`` model, data set, epochs, keyword arguments and asset folder."""


def recipe_config(name: str) -> dict[str, Any]:
    """The ``config.json`` of the asset ``name`` (what ``mpenv-gen train`` would write for the same run)."""
    recipe = RECIPES[name]
    return {"model": recipe["model"], "model_kwargs": recipe["model_kwargs"], "data": recipe["data"],
            "binarize": "none", "seed": 0, "epochs": recipe["epochs"], "batch_size": 64, "learning_rate": 2e-4,
            "input_shape": [1, 8, 8], "algo": recipe["model"], "env_id": recipe["data"],
            "made_by": f"python benchmarks/gan_assets.py {name}", "torch": torch.__version__}  # fmt: skip


def train(name: str, epochs: int | None = None) -> tuple[torch.nn.Module, GANHistory]:
    """The tests' training call for call (``epochs`` shortens it, for the bit-equality check)."""
    recipe = RECIPES[name]
    epochs = recipe["epochs"] if epochs is None else epochs
    # The tests' order of calls: the data, then the seed, the model and fit_gan (its own seed, 0, orders batches).
    if name == "dcgan":
        (train_split, _), _, _ = data.digits(labels=True, seed=0)
    else:
        train_split = data.load(recipe["data"], seed=0)[0]
    torch.manual_seed(0)
    model = DCGAN((1, 8, 8)) if recipe["model"] == "dcgan" else StyleGAN((1, 8, 8), **recipe["model_kwargs"])
    history = fit_gan(model, train_split, epochs=epochs)
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
    model, history = train(args.model)
    with RunLogger(out, config, total_steps=config["epochs"], progress=False) as log:
        for key, values in history.log.items():  # logged after training: the training draws are unchanged
            group = "gradient_penalty" if key == "gradient_norm" else "loss" if key in (
                "generator", "discriminator") else "discriminator"  # train_run's names  # fmt: skip
            for epoch, value in enumerate(values, 1):
                log.log(f"{group}/{key}", value, epoch)
    seconds = time.process_time() - start
    save_torch(out, {"step": history.epochs, "modules": {"model": model.state_dict()},
                     "extra": {"steps": history.steps, "log": history.log, "cpu_seconds": seconds}})  # fmt: skip
    print(f"{args.model}: {history.epochs} epochs, {history.steps} steps, {seconds:.0f} CPU s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
