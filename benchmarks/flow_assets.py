"""Train the flows shipped in ``generative/assets/`` (what the slow flow tests evaluate instead of training them).

    python benchmarks/flow_assets.py glow-uniform              # -> generative/assets/digits_glow_uniform/
    python benchmarks/flow_assets.py glow-variational          # -> generative/assets/digits_glow_variational/
    python benchmarks/flow_assets.py cflow                     # -> generative/assets/digits_cflow/
    python benchmarks/flow_assets.py checkerboard-spline-flow  # -> generative/assets/checkerboard_spline_flow/

Each recipe is the one its test used to run in CI, call for call (the same seeds, data, model, optimizer and
learning-rate schedule, in the same order, on one torch thread), so on the same machine and torch the weights
are bit for bit the ones the test trained (checked for 2 epochs of each):

- ``glow-uniform``, ``glow-variational`` (``tests/test_flows_variational.py``): the grey digits (17 levels),
  ``torch.manual_seed(0)``, ``Glow((1, 8, 8), n_bins=17, dequantization=...)``, ``fit`` for 30 epochs (Adam
  1e-3, batch 64, patience 1000; 44 and 79 CPU-s);
- ``cflow`` (``tests/test_flows_conditional.py``): ``torch.manual_seed(0)``, then the digits,
  ``CFlow((1, 8, 8), levels=2, steps=2, hidden=32, features=16, n_bins=17)``, ``fit`` for 50 epochs with
  Adam 2e-3 (batch 64, patience 1000; 106 CPU-s);
- ``checkerboard-spline-flow`` (``tests/test_flows.py``): ``torch.manual_seed(0)``,
  ``SplineFlow((2,), bins=16, tail_bound=3.0)``, then the toy checkerboard, ``fit_phases`` 140 epochs at 5e-3
  and 60 at 5e-4 with one Adam (batch 256; 168 CPU-s).

``fit`` leaves each model with its best validation epoch's weights, which the tests evaluated; those are what
``checkpoint.pt`` holds (no optimizer state: the run cannot be resumed). Each output folder is an ``mpenv-gen``
run directory: ``config.json`` (with ``made_by``; ``phases`` for the two-rate schedule, whose ``learning_rate``
is the last phase's, as a resumed CLI run records it), ``checkpoint.pt`` and the TensorBoard events of the run
(``loss/train``, ``loss/val``, ``charts/learning_rate`` per epoch, written after training so the training draws
are unchanged), so ``mpenv-gen eval generative/assets/digits_cflow`` and ``generative.train.load_run`` read it
like any run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from generative import data
from generative.fit import FitHistory, fit, fit_phases
from generative.flows import CFlow, Glow, SplineFlow
from mpenv.checkpoint import save_torch
from mpenv.logger import RunLogger

ASSETS = Path(__file__).resolve().parents[1] / "generative" / "assets"
RECIPES: dict[str, dict[str, Any]] = {
    "glow-uniform": {"model": "glow", "model_kwargs": {"n_bins": 17, "dequantization": "uniform"}, "data": "digits",
                     "phases": [(30, 1e-3)], "batch_size": 64, "folder": "digits_glow_uniform"},
    "glow-variational": {"model": "glow", "model_kwargs": {"n_bins": 17, "dequantization": "variational"},
                         "data": "digits", "phases": [(30, 1e-3)], "batch_size": 64,
                         "folder": "digits_glow_variational"},
    "cflow": {"model": "cflow", "model_kwargs": {"levels": 2, "steps": 2, "hidden": 32, "features": 16, "n_bins": 17},
              "data": "digits", "phases": [(50, 2e-3)], "batch_size": 64, "folder": "digits_cflow"},
    "checkerboard-spline-flow": {"model": "spline-flow", "model_kwargs": {"bins": 16, "tail_bound": 3.0},
                                 "data": "toy:checkerboard", "phases": [(140, 5e-3), (60, 5e-4)], "batch_size": 256,
                                 "folder": "checkerboard_spline_flow"},
}  # fmt: skip
"""name -> the ``mpenv-gen`` model and keyword arguments, data set, ``(epochs, learning rate)`` phases, batch size
and asset folder."""
PATIENCE = 1000
"""The tests' patience: no early stop; the best validation epoch's weights are kept."""


def recipe_config(name: str) -> dict[str, Any]:
    """The ``config.json`` of the asset ``name`` (what ``mpenv-gen train`` would write for the same run)."""
    recipe = RECIPES[name]
    phases = recipe["phases"]
    shape = [2] if recipe["data"].startswith("toy:") else [1, 8, 8]
    config = {"model": recipe["model"], "model_kwargs": recipe["model_kwargs"], "data": recipe["data"],
              "binarize": "none", "seed": 0, "epochs": sum(e for e, _ in phases), "batch_size": recipe["batch_size"],
              "learning_rate": phases[-1][1], "patience": PATIENCE, "input_shape": shape, "algo": recipe["model"],
              "env_id": recipe["data"], "made_by": f"python benchmarks/flow_assets.py {name}",
              "torch": torch.__version__}  # fmt: skip
    if len(phases) > 1:
        config["phases"] = [list(phase) for phase in phases]
    return config


def train(name: str, epochs: int | None = None) -> tuple[torch.nn.Module, FitHistory]:
    """The test's training call for call; ``epochs`` (for the bit-equality check) cuts every phase to that many."""
    recipe = RECIPES[name]
    kwargs = recipe["model_kwargs"]
    phases = [(e if epochs is None else epochs, lr) for e, lr in recipe["phases"]]
    if recipe["model"] == "glow":  # the data, then the seed, the model and fit (its own seed, 0, orders batches)
        train_split, val_split, _ = data.load("digits", seed=0)
        torch.manual_seed(0)
        model = Glow((1, 8, 8), **kwargs)
        history = fit(model, train_split, val_split, epochs=phases[0][0], batch_size=recipe["batch_size"],
                      patience=PATIENCE)  # fmt: skip
    elif recipe["model"] == "cflow":  # the seed, the data, the model, its Adam and fit
        torch.manual_seed(0)
        (train_x, _), (val_x, _), _ = data.digits(labels=True)
        model = CFlow((1, 8, 8), **kwargs)
        history = fit(model, train_x, val_x, epochs=phases[0][0], batch_size=recipe["batch_size"], patience=PATIENCE,
                      optimizer=torch.optim.Adam(model.parameters(), lr=phases[0][1]))  # fmt: skip
    else:  # the seed, the model, the data and fit_phases (one Adam across the phases)
        torch.manual_seed(0)
        model = SplineFlow((2,), **kwargs)
        train_split, val_split, _ = data.load(recipe["data"], seed=0)
        history = fit_phases(model, train_split, val_split, phases, batch_size=recipe["batch_size"])
    return model, history


def write_run(out: Path, config: dict[str, Any], model: torch.nn.Module, history: FitHistory,
              seconds: float) -> None:  # fmt: skip
    """``out`` as an ``mpenv-gen`` run directory: config, events (per epoch) and the kept weights."""
    rates = [lr for epochs, lr in config.get("phases", [[config["epochs"], config["learning_rate"]]])
             for _ in range(epochs)]  # fmt: skip
    with RunLogger(out, config, total_steps=history.epochs, progress=False) as log:
        for epoch, (train_loss, val_loss) in enumerate(zip(history.train_loss, history.val_loss, strict=True), 1):
            log.log("loss/train", train_loss, epoch)
            log.log("loss/val", val_loss, epoch)
            log.log("charts/learning_rate", rates[epoch - 1], epoch)
    # the model holds the best epoch's weights (fit loads them); the run loader reads "best_model", else "model"
    save_torch(out, {"step": history.epochs, "modules": {"model": model.state_dict()},
                     "extra": {"best_epoch": history.best_epoch, "train_loss": history.train_loss,
                               "val_loss": history.val_loss, "cpu_seconds": seconds}})  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=list(RECIPES))
    parser.add_argument("--out", default=None, help="output folder (default: generative/assets/<folder>)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else ASSETS / RECIPES[args.model]["folder"]
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # as in the tests (tests/conftest.py): the weights depend on the thread count
    start = time.process_time()
    model, history = train(args.model)
    seconds = time.process_time() - start
    write_run(out, recipe_config(args.model), model, history, seconds)
    print(f"{args.model}: {history.epochs} epochs, best validation loss {history.best_val_loss:.4f} at epoch "
          f"{history.best_epoch + 1}, {seconds:.0f} CPU s; wrote {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
