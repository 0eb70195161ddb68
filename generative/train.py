"""``mpenv-gen``: train, sample and evaluate the generative models from the shell.

    mpenv-gen train made --data digits-binary --epochs 200 --seed 0
    mpenv-gen train vae --data omniglot28 --model-kwargs '{"latent_dim": 32}'
    mpenv-gen sample runs/<run-dir> -n 64 --out samples.png
    mpenv-gen eval runs/<run-dir>                 # test NLL in nats and bits/dim
    mpenv-gen list                                # models and data sets

A run directory (``runs/<data>__<model>__<seed>__<time>/``) holds TensorBoard scalars (``loss/train``,
``loss/val``, ``nll/val``, ``nll/val_bits_per_dim``, ``charts/learning_rate``) and images (``samples``, and
``reconstructions`` for models that reconstruct), ``config.json`` (model, its keyword arguments, data,
training settings) and ``checkpoint.pt`` (the current and the best-on-validation weights, the optimizer, the
epoch; written atomically every epoch, loaded with ``weights_only=True``). Training stops early when the
validation loss has not improved for ``--patience`` epochs (these models overfit 1.2k digits quickly) and keeps
the best weights; Ctrl-C keeps the last checkpoint, and ``--resume RUN_DIR`` continues.

Negative log-likelihoods: exact for the autoregressive models; for the VAEs ``eval`` reports the importance-
weighted bound with ``--iwae-k`` samples (an upper bound on the NLL), training logs the negative ELBO.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from generative.fit import Data, FitHistory, batches, fit, mean_loss
from mpenv.checkpoint import CheckpointError, load_config, load_state_dict_checked, load_torch, save_torch
from mpenv.device import get_device, module_device, seed_everything
from mpenv.logger import RunLogger, make_run_dir

MODELS: dict[str, str] = {
    "autoencoder": "generative.autoencoder:Autoencoder",
    "conv-autoencoder": "generative.autoencoder:ConvAutoencoder",
    "linear-autoencoder": "generative.autoencoder:LinearAutoencoder",
    "vae": "generative.vae:VAE",
    "beta-vae": "generative.vae:BetaVAE",
    "cvae": "generative.vae:ConditionalVAE",
    "vqvae": "generative.vqvae:VQVAE",
    "fvsbn": "generative.autoregressive:FVSBN",
    "nade": "generative.autoregressive:NADE",
    "made": "generative.autoregressive:MADE",
    "pixelcnn": "generative.autoregressive:PixelCNN",
    "gated-pixelcnn": "generative.autoregressive:GatedPixelCNN",
    "wavenet": "generative.autoregressive:WaveNet",
    "transformer": "generative.autoregressive:CausalTransformer",
}
"""``mpenv-gen`` model name -> ``module:class``; every class takes ``input_shape`` first."""


def model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def is_conditional(model: nn.Module | type[nn.Module]) -> bool:
    """Conditional models (the CVAE, class attribute ``conditional = True``) take the label with the image:
    ``loss(x, y)``, ``log_prob(x, y)``, ``sample(n, y)``."""
    return bool(getattr(model, "conditional", False))


def build_model(config: dict[str, Any]) -> nn.Module:
    cls = model_class(config["model"])
    try:
        return cls(tuple(config["input_shape"]), **config.get("model_kwargs", {}))
    except TypeError as err:
        raise ValueError(f"{config['model']}: bad model kwargs {config.get('model_kwargs')} ({err})") from err


# --------------------------------------------------------------------------------------------------- data


def load_data(name: str, seed: int, labels: bool) -> tuple[Any, Any, Any]:
    """``(train, val, test)`` tensors, or ``(x, y)`` pairs when the model is conditional."""
    from generative import data

    if labels:
        if not name.startswith("digits"):
            raise ValueError(f"a conditional model needs labelled data (digits, digits-binary), not {name!r}")
        return tuple(data.digits(binarize=name == "digits-binary", seed=seed, labels=True))
    return tuple(data.load(name, seed=seed))


# ------------------------------------------------------------------------------------------------ numbers


@torch.no_grad()
def mean_nll(model: nn.Module, split: Data, **log_prob_kwargs: Any) -> float | None:
    """Mean ``-log p(x)`` in nats (``None`` for models without a likelihood, e.g. autoencoders)."""
    total, count = 0.0, 0
    for batch in batches(split, 256, None, module_device(model)):
        try:
            log_p = model.log_prob(*batch, **log_prob_kwargs)
        except NotImplementedError:
            return None
        total += float(-log_p.sum())
        count += len(batch[0])
    return total / count


def bits_per_dim(nats: float, input_shape: tuple[int, ...]) -> float:
    return nats / (math.prod(input_shape) * math.log(2))


# ------------------------------------------------------------------------------------------------ pictures


def image_grid(images: Tensor, columns: int = 8) -> np.ndarray:
    """``[N, C, H, W]`` in [0, 1] -> one ``[rows*(H+1)-1, cols*(W+1)-1]`` grey (or RGB) array, 1-pixel gaps."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1, c), 0.5, dtype=np.float32)  # grey gaps
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = image.permute(1, 2, 0).numpy()
    return grid[..., 0] if c == 1 else grid


def sample_figure(samples: Tensor, title: str = "") -> Any:
    """A matplotlib figure of samples: an image grid, or a scatter plot for 2D points."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.add_subplot()
    if samples.ndim == 4:
        ax.imshow(image_grid(samples), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
    else:
        points = samples.detach().cpu().reshape(len(samples), -1).numpy()
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_aspect("equal")
    ax.set_title(title)
    return fig


def draw_samples(model: nn.Module, n: int, seed: int, device: torch.device) -> Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        if is_conditional(model):
            return model.sample(n, torch.arange(n, device=device) % 10)
        return model.sample(n)


# ------------------------------------------------------------------------------------------------ training


def reconstruction_figure(model: nn.Module, batch: tuple[Tensor, ...]) -> Any:
    """Inputs (top row) and their reconstructions (bottom row), for models that reconstruct; ``batch`` is
    ``(x,)`` or ``(x, y)``."""
    with torch.no_grad():
        pairs = torch.cat([batch[0], model.reconstruct(*batch)])
    return sample_figure(pairs, "inputs / reconstructions")


def save_checkpoint(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, history: FitHistory) -> None:
    extra = {"train_loss": history.train_loss, "val_loss": history.val_loss, "best_epoch": history.best_epoch,
             "seconds": history.seconds}  # fmt: skip
    modules = {"model": model.state_dict(), "best_model": history.best_state}
    save_torch(run_dir, {"step": history.epochs, "modules": modules,
                         "optimizers": {"optimizer": optimizer.state_dict()}, "extra": extra})  # fmt: skip


def restore_checkpoint(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> FitHistory:
    state = load_torch(run_dir, required=("step", "modules", "optimizers", "extra"))
    load_state_dict_checked(model, state["modules"]["model"], str(run_dir))
    optimizer.load_state_dict(state["optimizers"]["optimizer"])
    extra = state["extra"]
    return FitHistory(list(extra["train_loss"]), list(extra["val_loss"]), int(extra["best_epoch"]),
                      state["modules"]["best_model"], float(extra["seconds"]))  # fmt: skip


def new_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model, "model_kwargs": json.loads(args.model_kwargs), "data": args.data, "seed": args.seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "patience": args.patience, "algo": args.model, "env_id": args.data,
    }  # fmt: skip


def train(args: argparse.Namespace) -> int:
    config = load_config(args.resume) if args.resume else new_config(args)
    seed_everything(config["seed"])
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    conditional = is_conditional(model_class(config["model"]))  # fails on unknown names before loading data
    train_split, val_split, test_split = load_data(config["data"], config["seed"], conditional)
    first = train_split[0] if isinstance(train_split, tuple) else train_split
    config["input_shape"] = list(first.shape[1:])
    model = build_model(config).to(device)
    model.loss(*next(batches(train_split, 2, None, device)))  # the model fits the data: fail before a run dir
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    if args.resume:
        run_dir = Path(args.resume)
        history = restore_checkpoint(run_dir, model, optimizer)
    else:
        run_dir, history = make_run_dir(args.logdir, config["data"], config["model"], config["seed"]), FitHistory()
    probe = next(batches(val_split, 8, None, device))

    with RunLogger(run_dir, config, total_steps=config["epochs"]) as log:

        def on_epoch(h: FitHistory) -> None:
            epoch = h.epochs
            log.log("loss/train", h.train_loss[-1], epoch)
            log.log("loss/val", h.val_loss[-1], epoch)
            log.log("charts/learning_rate", optimizer.param_groups[0]["lr"], epoch)
            if epoch % args.sample_every == 0:
                with contextlib.suppress(NotImplementedError):  # autoencoders have nothing to sample from
                    log.figure("samples", sample_figure(draw_samples(model, 64, epoch, device)), epoch)
                if hasattr(model, "reconstruct") and first.ndim == 4:
                    log.figure("reconstructions", reconstruction_figure(model, probe), epoch)
            save_checkpoint(run_dir, model, optimizer, h)

        try:
            fit(model, train_split, val_split, epochs=config["epochs"], batch_size=config["batch_size"],
                patience=config["patience"], seed=config["seed"], optimizer=optimizer, history=history,
                on_epoch=on_epoch)  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted; the last checkpoint is kept in {run_dir}", file=sys.stderr)
            return 130
        nll = mean_nll(model, val_split)
        if nll is not None:
            log.log("nll/val", nll, history.epochs)
            log.log("nll/val_bits_per_dim", bits_per_dim(nll, tuple(config["input_shape"])), history.epochs)
    if history.epochs < config["epochs"]:
        print(f"early stop after epoch {history.epochs}: best validation loss {history.best_val_loss:.4f} "
              f"at epoch {history.best_epoch + 1}")  # fmt: skip
    report(model, config, test_split, k=args.iwae_k)
    print(f"run directory: {run_dir}")
    return 0


def report(model: nn.Module, config: dict[str, Any], test_split: Data, k: int) -> None:
    kwargs = {"k": k} if config["model"] in ("vae", "beta-vae", "cvae") else {}
    nll = mean_nll(model, test_split, **kwargs)
    if nll is None:
        print(f"{config['model']} on {config['data']}: test loss {mean_loss(model, test_split):.4f} (no likelihood)")
        return
    bound = f" (IWAE bound, k={k})" if kwargs else ""
    print(f"{config['model']} on {config['data']}: test NLL {nll:.3f} nats, "
          f"{bits_per_dim(nll, tuple(config['input_shape'])):.4f} bits/dim{bound}")


def load_run(run_dir: str, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    config = load_config(run_dir)
    if config.get("model") not in MODELS:
        raise CheckpointError(f"{run_dir}: config.json names no mpenv-gen model")
    model = build_model(config).to(device)
    state = load_torch(run_dir)
    name = "best_model" if state["modules"].get("best_model") is not None else "model"
    load_state_dict_checked(model, state["modules"][name], str(run_dir))
    return model.eval(), config


# ------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpenv-gen", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("model", nargs="?", help=f"one of: {', '.join(MODELS)}")
    t.add_argument("--data", default="digits-binary", help="digits, digits-binary, omniglot28, toy:NAME, idx:PATH")
    t.add_argument("--model-kwargs", default="{}", help="JSON dict of the model's keyword arguments")
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--patience", type=int, default=10, help="early stop after this many epochs without a better "
                   "validation loss")  # fmt: skip
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--logdir", default="runs")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    t.add_argument("--sample-every", type=int, default=10, help="epochs between sample grids in TensorBoard")
    t.add_argument("--iwae-k", type=int, default=100, help="importance samples of the final VAE test NLL")
    t.add_argument("--resume", default=None, help="continue this run directory")
    s = commands.add_parser("sample", help="draw samples from a trained model into a PNG")
    s.add_argument("run_dir")
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--out", default="samples.png")
    s.add_argument("--seed", type=int, default=0)
    e = commands.add_parser("eval", help="test NLL (nats and bits/dim) of a trained model")
    e.add_argument("run_dir")
    e.add_argument("--iwae-k", type=int, default=1000, help="importance samples for VAEs")
    commands.add_parser("list", help="the models and data sets")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            from generative.data import DATASETS, TOY_DENSITIES

            print("models:", ", ".join(MODELS))
            print("data:", ", ".join(DATASETS), f"(toy: {', '.join(TOY_DENSITIES)})")
            return 0
        if args.command == "train":
            if args.model is None and not args.resume:
                raise ValueError(f"name a model ({', '.join(MODELS)}) or --resume a run")
            if args.model is not None:
                model_class(args.model)
            return train(args)
        device = get_device("cpu")
        model, config = load_run(args.run_dir, device)
        if args.command == "sample":
            samples = draw_samples(model, args.n, args.seed, device)
            sample_figure(samples, f"{config['model']} on {config['data']}").savefig(args.out, dpi=120)
            print(f"wrote {args.n} samples to {args.out}")
            return 0
        _, _, test_split = load_data(config["data"], config["seed"], is_conditional(model))
        report(model, config, test_split, k=args.iwae_k)
        return 0
    except (ValueError, CheckpointError, json.JSONDecodeError, NotImplementedError) as err:
        print(f"mpenv-gen: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
