"""``mpenv-gen``: train, sample and evaluate the generative models from the shell.

    mpenv-gen train made --data digits-binary --epochs 200 --seed 0
    mpenv-gen train vae --data omniglot28 --model-kwargs '{"latent_dim": 32}'
    mpenv-gen sample runs/<run-dir> -n 64 --out samples.png
    mpenv-gen train spline-flow --data toy:checkerboard     # normalizing flows on 2D densities
    mpenv-gen sample runs/<run-dir> --temperature 0.7     # flows: z ~ N(0, 0.7^2 I)
    mpenv-gen train srflow --data digits          # super-resolution: p(x | its 2x average-pooled image)
    mpenv-gen train cflow --data digits           # C-Flow: p(low-res) p(x | low-res's latent)
    mpenv-gen train ddpm --data digits-binary     # diffusion; ddpm-cond: class labels and guidance
    mpenv-gen sample runs/<run-dir> --sampler ddim --steps 50 --guidance 2    # DDIM; guided (ddpm-cond)
    mpenv-gen train controlnet --data digits-binary --model-kwargs '{"base": "runs/<ddpm run>"}'
    mpenv-gen train latent-ddpm --data digits-binary --model-kwargs '{"autoencoder": "runs/<vae run>"}'
    mpenv-gen eval runs/<run-dir>                 # test NLL in nats and bits/dim
    mpenv-gen list                                # models and data sets

    mpenv-gen train made --data idx:t10k-images-idx3-ubyte.gz --binarize threshold    # MNIST-format files

A run directory (``runs/<data>__<model>__<seed>__<time>/``) holds TensorBoard scalars (``loss/train``,
``loss/val``, ``charts/learning_rate``, and every epoch ``nll/val`` and ``nll/val_bits_per_dim``: the likelihood
curve) and images (``samples``, ``reconstructions`` for models that reconstruct, ``density`` heatmaps for models of
2D points), ``config.json`` (model,
its keyword arguments, data, training settings) and ``checkpoint.pt`` (the current and the best-on-validation
weights, the optimizer, the epoch; written atomically every epoch, loaded with ``weights_only=True``). Training
stops early when the validation loss has not improved for ``--patience`` epochs (these models overfit 1.2k
digits quickly) and keeps the best weights; Ctrl-C keeps the last checkpoint, and ``--resume RUN_DIR``
continues it. On resume ``--epochs`` (the total, more than the run has done), ``--learning-rate``,
``--patience`` and ``--batch-size`` take effect when given (the run's values otherwise); the model, its
kwargs, ``--data``, ``--binarize`` and ``--seed`` are the run's and cannot change.

Negative log-likelihoods: exact for the autoregressive models and the flows on 2D points; the flows on images
(``realnvp``, ``glow``) dequantize the pixels (``n_bins``, set from the data; uniform noise, or a learned one with
``--model-kwargs '{"dequantization": "variational"}'``) and report a one-sample estimate of the bound on the
discrete NLL (``srflow``: of ``p(x | u)``, conditioned on ``x``'s own low-res ``u``, so not
comparable with the unconditional rows; its ``sample`` super-resolves the test images; ``cflow``: of
``p(u) p(x | u)``, a bound on the image's own NLL as ``u`` is a function of ``x``); for the VAEs ``train``
and ``eval`` report the importance-weighted bound with ``--iwae-k`` samples (default 1000, seeded: the same
number from both), an upper bound on the NLL, while ``nll/val`` logs the negative ELBO; the VQ-VAE's is its ELBO
(one-hot q). The diffusion models' is their variational bound, all ``T`` terms in ``eval`` (seeded; ``nll/val`` is
a seeded 20-term estimate), with DDPM's discrete decoder on the data's grey levels; ``eval`` also reports sample
quality (Frechet distance on 8x8 and 28x28 digits, the samples' class accuracy for ``ddpm-cond``, their agreement
with the control for ``controlnet``) with the ``sample`` flags ``--sampler``, ``--steps``, ``--eta``, ``--guidance``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import inspect
import json
import math
import sys
from collections.abc import Callable
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
    "realnvp": "generative.flows:RealNVP",
    "spline-flow": "generative.flows:SplineFlow",
    "glow": "generative.flows:Glow",
    "conditional-flow": "generative.flows:ConditionalFlow",
    "srflow": "generative.flows:SRFlow",
    "cflow": "generative.flows:CFlow",
    "gan": "generative.gans:GAN",
    "dcgan": "generative.gans:DCGAN",
    "wgan-gp": "generative.gans:WGANGP",
    "unrolled-gan": "generative.gans:UnrolledGAN",
    "stylegan": "generative.gans:StyleGAN",
    "pix2pix": "generative.gans:Pix2Pix",
    "cyclegan": "generative.gans:CycleGAN",
    "ddpm": "generative.diffusion:DDPM",
    "ddpm-cond": "generative.diffusion:ConditionalDDPM",
    "controlnet": "generative.diffusion:ControlNet",
    "latent-ddpm": "generative.diffusion:LatentDDPM",
}
"""``mpenv-gen`` model name -> ``module:class``; every class takes ``input_shape`` first."""


def pick_device(spec: str) -> torch.device:
    """``--device`` through :func:`mpenv.device.get_device`; an unavailable device is a usage error."""
    try:
        return get_device(spec)
    except RuntimeError as err:
        raise ValueError(f"--device {spec}: {err}") from err


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
        raise ValueError(f"{config['model']}: bad model kwargs (--model-kwargs) {config.get('model_kwargs')} "
                         f"({err})") from err  # fmt: skip


def parse_model_kwargs(text: str) -> dict[str, Any]:
    """``--model-kwargs``: a JSON object of the model's keyword arguments."""
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model-kwargs must be a JSON object like '{{\"latent_dim\": 4}}', got {text!r} "
                         f"({err})") from err  # fmt: skip
    if not isinstance(kwargs, dict):
        raise ValueError(f"--model-kwargs must be a JSON object like '{{\"latent_dim\": 4}}', got {text!r}")
    return kwargs


# --------------------------------------------------------------------------------------------------- data


BINARIZE = {"none": None, "threshold": True, "stochastic": "stochastic"}
"""``--binarize`` -> the ``binarize`` argument of :func:`generative.data.load` (``None``: as the data set comes)."""


def load_data(name: str, seed: int, labels: bool, binarize: str = "none") -> tuple[Any, Any, Any]:
    """``(train, val, test)`` tensors, or ``(x, y)`` pairs when the model is conditional."""
    from generative import data

    if binarize not in BINARIZE:
        raise ValueError(f"--binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    if name.startswith("idx:") and not Path(name[len("idx:") :]).is_file():
        raise ValueError(f"--data {name}: no such file {name[len('idx:') :]}")
    if labels and not name.startswith("digits"):
        raise ValueError(f"a conditional model needs labelled data (digits, digits-binary), not {name!r}")
    try:
        return tuple(data.load(name, seed=seed, binarize=BINARIZE[binarize], labels=labels))
    except ValueError as err:
        if "binarize" in str(err):
            raise ValueError(f"--binarize {binarize}: {err}") from err
        raise


def pixel_levels(name: str, binarize: str) -> int:
    """Grey levels of an image source (what a flow dequantizes): 2 once binarized, digits 17, IDX files 256."""
    from generative.data import DIGITS_LEVELS

    if binarize != "none" or name in ("digits-binary", "omniglot28"):
        return 2
    return DIGITS_LEVELS + 1 if name == "digits" else 256


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


DENSITY_EXTENT, DENSITY_CELLS = 4.0, 200
"""2D models' density heatmaps: ``[-4, 4]^2`` (every toy density lies inside) on a 200 x 200 grid."""


@torch.no_grad()
def density_figure(model: nn.Module, device: torch.device, title: str = "model density") -> Any:
    """A heatmap of a 2D model's ``p(x) = exp(log_prob(x))`` (for the VAEs, of the ELBO's one-sample estimate)."""
    from matplotlib.figure import Figure

    centres = torch.linspace(-DENSITY_EXTENT, DENSITY_EXTENT, DENSITY_CELLS)
    xx, yy = torch.meshgrid(centres, centres, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], dim=1).to(device)
    density = torch.cat([model.log_prob(chunk).exp() for chunk in points.split(10_000)])
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.add_subplot()
    extent = (-DENSITY_EXTENT, DENSITY_EXTENT, -DENSITY_EXTENT, DENSITY_EXTENT)
    ax.imshow(density.view(DENSITY_CELLS, DENSITY_CELLS).cpu().numpy(), origin="lower", extent=extent)
    ax.set_title(title)
    return fig


SAMPLER_FLAGS = {"temperature": ("--temperature", 1.0, "the flows take one"),
                 "sampler": ("--sampler", "ddpm", "the diffusion models take one"),
                 "steps": ("--steps", None, "the diffusion models take it"),
                 "eta": ("--eta", 0.0, "the diffusion models take it"),
                 "guidance": ("--guidance", 0.0, "ddpm-cond takes it")}  # fmt: skip
"""``sample`` keyword -> (flag, default, which models take it)."""


def sampler_kwargs(model: nn.Module, **given: Any) -> dict[str, Any]:
    """The keywords of ``model.sample`` that differ from their defaults; a flag the model's ``sample`` does not
    take is a usage error naming the models that do."""
    kwargs = {}
    for key, value in given.items():
        flag, default, models = SAMPLER_FLAGS[key]
        if value == default:
            continue
        if key not in inspect.signature(model.sample).parameters:
            raise ValueError(f"{flag}: {type(model).__name__} does not take it ({models})")
        kwargs[key] = value
    return kwargs


def draw_samples(model: nn.Module, n: int, seed: int, device: torch.device, temperature: float = 1.0,
                 inputs: Tensor | None = None, **options: Any) -> Tensor:  # fmt: skip
    """``n`` samples; ``temperature`` only for models whose ``sample`` takes one (the flows), and ``options``
    (``sampler``, ``steps``, ``eta``, ``guidance``) for the diffusion models. Super-resolution models (``srflow``)
    sample for the low-res images of ``inputs``: rows of 8, the low-res input (upscaled) then 7 high-res samples
    for it; ControlNet likewise for the controls of ``inputs``."""
    kwargs = sampler_kwargs(model, temperature=temperature, **options)
    torch.manual_seed(seed)
    with torch.no_grad():
        if getattr(model, "translates", False):  # rows of 8: 4 (task image, translation) pairs of test digits
            if inputs is None:
                raise ValueError(f"{type(model).__name__} translates test digits: inputs needed")
            source = model.source_of(inputs[: -(-n // 2)].to(device))
            return torch.stack([source, model.translate(source)], 1).flatten(0, 1)[:n]
        if hasattr(model, "super_resolve"):
            rows = -(-n // 8)
            if inputs is None or len(inputs) < rows:
                raise ValueError(f"{type(model).__name__} samples for low-res inputs: {rows} images needed")
            low_res = model.low_res(inputs[:rows].to(device))
            upscaled = torch.nn.functional.interpolate(low_res, scale_factor=model.factor, mode="nearest")
            return torch.cat([upscaled[:, None], model.super_resolve(low_res, 7, temperature)], 1).flatten(0, 1)[:n]
        if hasattr(model, "control_of"):  # rows of 8: a test digit's control, then 7 samples following it
            rows = -(-n // 8)
            if inputs is None or len(inputs) < rows:
                raise ValueError(f"{type(model).__name__} samples for the controls of test images: {rows} needed")
            control = model.control_of(inputs[:rows].to(device)).repeat_interleave(7, 0)
            samples = model.sample(len(control), control, **kwargs).view(rows, 7, *model.input_shape)
            return torch.cat([control.view(rows, 7, *model.input_shape)[:, :1], samples], 1).flatten(0, 1)[:n]
        if is_conditional(model):
            return model.sample(n, torch.arange(n, device=device) % 10, **kwargs)
        return model.sample(n, **kwargs)


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


TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 200, "batch_size": 64, "learning_rate": 1e-3, "patience": 10}
"""Training settings of a new run; on ``--resume`` the run's own, unless the flag is given."""
GAN_DEFAULTS: dict[str, Any] = {"epochs": 100, "learning_rate": 2e-4}
"""What differs for the GANs: DCGAN's learning rate; no early stopping (no validation likelihood to watch)."""
RESUMABLE = ("epochs", "batch_size", "learning_rate", "patience")
"""Settings that ``--resume`` lets change; the others (model, its kwargs, data, binarization, seed) are the run's."""
FIXED_ON_RESUME = {"model": "the model", "model_kwargs": "--model-kwargs", "data": "--data",
                   "binarize": "--binarize", "seed": "--seed"}  # fmt: skip
IWAE_K = 1000
"""Importance samples of the VAEs' test NLL, in ``train`` and ``eval`` alike."""


def check_args(args: argparse.Namespace) -> None:
    """Every numeric flag in range, before anything is loaded or written."""
    positive = {"epochs": "--epochs", "batch_size": "--batch-size", "patience": "--patience",
                "sample_every": "--sample-every", "iwae_k": "--iwae-k", "n": "-n"}  # fmt: skip
    for key, flag in positive.items():
        value = getattr(args, key, None)
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    temperature = getattr(args, "temperature", None)
    if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"--temperature must be a positive number, got {temperature}")
    lr = getattr(args, "learning_rate", None)
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"--learning-rate must be a positive number, got {lr}")
    if getattr(args, "threads", 0) < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    out = getattr(args, "out", None)
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise ValueError(f"--out {out}: no such directory {Path(out).resolve().parent}")
    if out is not None and Path(out).is_dir():
        raise ValueError(f"--out {out} is a directory; name an image file such as {Path(out) / 'samples.png'}")


def is_adversarial(model: nn.Module | type[nn.Module]) -> bool:
    """GANs (class attribute ``adversarial = True``) train two players (``generative.gans.train``) and have no
    likelihood."""
    return bool(getattr(model, "adversarial", False))


def new_config(args: argparse.Namespace) -> dict[str, Any]:
    cls = model_class(args.model) if args.model in MODELS else None
    defaults = {**TRAIN_DEFAULTS, **(GAN_DEFAULTS if cls is not None and is_adversarial(cls) else {}),
                **getattr(cls, "training_defaults", {})}  # fmt: skip
    settings = {key: defaults[key] if getattr(args, key) is None else getattr(args, key) for key in RESUMABLE}
    return {
        "model": args.model, "model_kwargs": parse_model_kwargs(args.model_kwargs or "{}"),
        "data": args.data or "digits-binary", "binarize": args.binarize or "none",
        "seed": 0 if args.seed is None else args.seed, **settings, "algo": args.model, "env_id": args.data,
    }  # fmt: skip


def resumed_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's config with the resumable settings given on the command line."""
    config = load_config(args.resume)
    for key, flag in FIXED_ON_RESUME.items():
        if getattr(args, key) is not None:
            raise ValueError(f"{flag} cannot change on --resume (the run's is used); only --epochs, --learning-rate, "
                             "--patience and --batch-size can")  # fmt: skip
    config.setdefault("binarize", "none")  # runs from before --binarize existed
    config.update({key: getattr(args, key) for key in RESUMABLE if getattr(args, key) is not None})
    return config


def train(args: argparse.Namespace) -> int:
    config = resumed_config(args) if args.resume else new_config(args)
    config["env_id"] = config["data"]
    seed_everything(config["seed"])
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cls = model_class(config["model"])  # fails on unknown names before loading data
    discrete = getattr(cls, "dequantizes", False) or getattr(cls, "discrete_decoder", False)
    if discrete and not config["data"].startswith("toy:"):  # flows and diffusion on discrete pixels
        config["model_kwargs"].setdefault("n_bins", pixel_levels(config["data"], config["binarize"]))
    conditional = is_conditional(cls)
    train_split, val_split, test_split = load_data(config["data"], config["seed"], conditional, config["binarize"])
    first = train_split[0] if isinstance(train_split, tuple) else train_split
    config["input_shape"] = list(first.shape[1:])
    model = build_model(config).to(device)
    if is_adversarial(model):
        from generative.gans.train import train_run

        return train_run(args, config, model, train_split, val_split, test_split, device)
    try:  # the model fits the data: fail before a run dir (on a copy: ActNorm would initialize on these 2 examples)
        copy.deepcopy(model).loss(*next(batches(train_split, 2, None, device)))
    except ValueError as err:
        hint = " (--binarize threshold or stochastic)" if "binarize" in str(err) else ""
        raise ValueError(f"{err}{hint}") from err
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    run_dir, history = open_run(args, config, lambda d: restore_checkpoint(d, model, optimizer), [optimizer],
                                FitHistory)  # fmt: skip
    probe = next(batches(val_split, 8, None, device))
    input_shape = tuple(config["input_shape"])

    with RunLogger(run_dir, config, total_steps=config["epochs"]) as log:

        def on_epoch(h: FitHistory) -> None:
            epoch = h.epochs
            log.log("loss/train", h.train_loss[-1], epoch)
            log.log("loss/val", h.val_loss[-1], epoch)
            log.log("charts/learning_rate", optimizer.param_groups[0]["lr"], epoch)
            with torch.random.fork_rng(devices=[]):  # a VAE's ELBO draws noise: logging must not move training
                # eval mode here (fit's validation pass); a diffusion model's bound is a seeded estimate per epoch
                nll = mean_nll(model, val_split, **getattr(model, "epoch_nll_kwargs", {}))
            if nll is not None:
                log.log("nll/val", nll, epoch)
                log.log("nll/val_bits_per_dim", bits_per_dim(nll, input_shape), epoch)
            if epoch % args.sample_every == 0:
                with contextlib.suppress(NotImplementedError):  # autoencoders have nothing to sample from
                    log.figure("samples", sample_figure(draw_samples(model, 64, epoch, device, inputs=probe[0])),
                               epoch)  # fmt: skip
                if hasattr(model, "reconstruct") and first.ndim == 4:
                    log.figure("reconstructions", reconstruction_figure(model, probe), epoch)
                if nll is not None and input_shape == (2,) and not getattr(model, "diffusion", False):
                    # toy densities: what the model learned, as a heatmap (a diffusion bound costs T passes a point)
                    with torch.random.fork_rng(devices=[]):
                        log.figure("density", density_figure(model, device), epoch)
            save_checkpoint(run_dir, model, optimizer, h)

        try:
            fit(model, train_split, val_split, epochs=config["epochs"], batch_size=config["batch_size"],
                patience=config["patience"], seed=config["seed"], optimizer=optimizer, history=history,
                on_epoch=on_epoch, threads=None)  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted; the last checkpoint is kept in {run_dir}", file=sys.stderr)
            return 130
    if history.epochs < config["epochs"]:
        print(f"early stop after epoch {history.epochs}: best validation loss {history.best_val_loss:.4f} "
              f"at epoch {history.best_epoch + 1}")  # fmt: skip
    report(model, config, test_split, k=args.iwae_k)
    print(f"run directory: {run_dir}")
    return 0


def open_run(args: argparse.Namespace, config: dict[str, Any], restore: Callable[[Path], Any],
             optimizers: list[torch.optim.Optimizer], new_history: Callable[[], Any]) -> tuple[Path, Any]:  # fmt: skip
    """The run directory and its history: ``--resume``'s (``restore(run_dir)``, then the optimizers take the
    config's learning rate) or a new one."""
    if not args.resume:
        return make_run_dir(args.logdir, config["data"], config["model"], config["seed"]), new_history()
    run_dir = Path(args.resume)
    history = restore(run_dir)
    for optimizer in optimizers:
        for group in optimizer.param_groups:  # the checkpoint's optimizer state carries the old rate
            group["lr"] = config["learning_rate"]
    if history.epochs >= config["epochs"]:
        raise ValueError(f"--epochs {config['epochs']}: {run_dir} has trained {history.epochs} epochs already; "
                         "give a larger total to continue")  # fmt: skip
    return run_dir, history


def report(model: nn.Module, config: dict[str, Any], test_split: Data, k: int,
           sample_options: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Print the test NLL; the VAEs' IWAE bound is seeded with the run's seed, so ``train`` and ``eval`` agree.
    A GAN has none: its sample quality instead."""
    if is_adversarial(model):
        from generative.gans.train import print_quality

        return print_quality(model, config, test_split)
    if getattr(model, "diffusion", False):
        return report_diffusion(model, config, test_split, **(sample_options or {}))
    kwargs = {"k": k} if config["model"] in ("vae", "beta-vae", "cvae") else {}
    torch.manual_seed(config["seed"])
    nll = mean_nll(model, test_split, **kwargs)
    if nll is None:
        print(f"{config['model']} on {config['data']}: test loss {mean_loss(model, test_split):.4f} (no likelihood)")
        return
    bound = f" (IWAE bound, k={k})" if kwargs else " (ELBO bound)" if config["model"] == "vqvae" else ""
    if config.get("model_kwargs", {}).get("n_bins") is not None:
        kind = "variational " if config["model_kwargs"].get("dequantization") == "variational" else ""
        bound = f" ({kind}dequantization bound, {config['model_kwargs']['n_bins']} levels)"
    print(f"{config['model']} on {config['data']}: test NLL {nll:.3f} nats, "
          f"{bits_per_dim(nll, tuple(config['input_shape'])):.4f} bits/dim{bound}")


@torch.no_grad()
def report_diffusion(model: nn.Module, config: dict[str, Any], test_split: Data, **options: Any) -> None:
    """A diffusion model's test bound (every term, seeded) and the quality of as many samples as test images
    (``options``: the ``sample`` flags): the Frechet distance on 8x8 and 28x28 digits, the samples' accuracy as
    their labels by the shipped classifier (``ddpm-cond``), the agreement with the controls (``controlnet``:
    mean IoU of the samples' control maps with the test images' controls given, and the base's for comparison)."""
    from generative import metrics

    name, shape = f"{config['model']} on {config['data']}", tuple(config["input_shape"])
    torch.manual_seed(config["seed"])
    nll = None if not hasattr(model, "bound") else mean_nll(model, test_split, seed=config["seed"])
    if nll is not None:
        variance = getattr(model, "base", model).variance
        print(f"{name}: test NLL <= {nll:.3f} nats, {bits_per_dim(nll, shape):.4f} bits/dim (variational bound, "
              f"all {model.schedule.steps} terms, sigma_t^2: {variance})")  # fmt: skip
    else:
        print(f"{name}: no likelihood (latent diffusion decodes deterministically)")
    if shape == (2,):  # points: modes covered on the mixtures, precision and recall
        from generative.gans.train import describe_quality, sample_quality_report

        quality = sample_quality_report(model, config["data"], test_split, seed=config["seed"])
        print(f"{name}: {describe_quality(quality, len(test_split))}")
    if shape not in ((1, 8, 8), (1, 28, 28)):
        return
    x, y = test_split if isinstance(test_split, tuple) else (test_split, None)
    device = module_device(model)
    kwargs = sampler_kwargs(model, **options)
    torch.manual_seed(config["seed"])
    parts = []
    if is_conditional(model):
        fake = model.sample(len(x), y.to(device), **kwargs).cpu()
        accuracy = metrics.accuracy(metrics.load_classifier(image_size=shape[-1]), fake, y)
        parts.append(f"classified as their labels {accuracy:.3f}")
    elif hasattr(model, "control_of"):
        control = model.control_of(x.to(device))
        fake = model.sample(len(x), control, **kwargs)
        torch.manual_seed(config["seed"])
        free = model.base.sample(len(x), **kwargs)
        parts.append(f"{model.control} agreement (mean IoU) {model.agreement(fake, control):.3f}, the base's "
                     f"{model.agreement(free, control):.3f}")  # fmt: skip
        fake = fake.cpu()
    else:
        fake = model.sample(len(x), **kwargs).cpu()
    quality = metrics.sample_quality(x, fake)
    sampler = ", ".join(f"{k} {v}" for k, v in kwargs.items()) or "ancestral sampling"
    print(f"{name}: {len(x)} samples ({sampler}) against the test images: FD {quality['fd']:.2f}, KID "
          f"{quality['kid']:.4f}, precision {quality['precision']:.3f}, recall {quality['recall']:.3f}"
          + "".join(f", {p}" for p in parts))  # fmt: skip


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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default, except ``None`` ones, whose help text says what they mean."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


DIFFUSION_EPOCHS = 400
"""The diffusion models' ``training_defaults`` epochs (kept in step by a test), for ``--help``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpenv-gen", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train a model", formatter_class=HelpFormatter)
    t.add_argument("model", nargs="?", help=f"one of: {', '.join(MODELS)}")
    t.add_argument("--data", default=None, help="digits, digits-binary, omniglot28, toy:NAME, idx:PATH "
                   "(default: digits-binary)")  # fmt: skip
    t.add_argument("--binarize", choices=list(BINARIZE), default=None,
                   help="grey images to {0, 1}: threshold (half the grey range), stochastic (pixel ~ "
                   "Bernoulli(grey), drawn once with --seed), none (as the data set comes; default)")  # fmt: skip
    t.add_argument("--model-kwargs", default=None, help="JSON object of the model's keyword arguments, e.g. "
                   "'{\"latent_dim\": 4}' (default: {})")  # fmt: skip
    resumable = "; on --resume: the run's unless given"
    t.add_argument("--epochs", type=int, default=None,
                   help=f"total epochs (default: {TRAIN_DEFAULTS['epochs']}; GANs: {GAN_DEFAULTS['epochs']} of "
                   f"ceil(N / batch size) generator steps each; diffusion: {DIFFUSION_EPOCHS}{resumable})")  # fmt: skip
    t.add_argument("--batch-size", type=int, default=None,
                   help=f"minibatch size (default: {TRAIN_DEFAULTS['batch_size']}{resumable})")  # fmt: skip
    t.add_argument("--learning-rate", type=float, default=None,
                   help=f"Adam's (default: {TRAIN_DEFAULTS['learning_rate']}, GANs {GAN_DEFAULTS['learning_rate']} "
                   f"for both players{resumable})")  # fmt: skip
    t.add_argument("--patience", type=int, default=None,
                   help="early stop after this many epochs without a better validation loss (default: "
                   f"{TRAIN_DEFAULTS['patience']}{resumable}; GANs and diffusion run all epochs)")  # fmt: skip
    t.add_argument("--seed", type=int, default=None, help="torch's seed and the validation split (default: 0)")
    t.add_argument("--logdir", default="runs", help="where the run directory is made")
    t.add_argument("--sample-every", type=int, default=10, help="epochs between sample grids in TensorBoard")
    t.add_argument("--iwae-k", type=int, default=IWAE_K, help="importance samples of the final VAE test NLL")
    t.add_argument("--resume", default=None, help="continue this run directory")
    s = commands.add_parser("sample", help="draw samples from a trained model into a PNG",
                            formatter_class=HelpFormatter)  # fmt: skip
    s.add_argument("run_dir", help="a run directory of mpenv-gen train")
    s.add_argument("-n", type=int, default=64, help="number of samples")
    s.add_argument("--out", default="samples.png", help="image file (its directory must exist)")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="flows: latents z ~ N(0, T^2 I); T < 1 trades diversity for typical samples")  # fmt: skip
    e = commands.add_parser("eval", help="test NLL (nats and bits/dim) of a trained model; GANs: sample quality; "
                            "diffusion: both", formatter_class=HelpFormatter)  # fmt: skip
    e.add_argument("run_dir", help="a run directory of mpenv-gen train")
    e.add_argument("--iwae-k", type=int, default=IWAE_K, help="importance samples for VAEs")
    for command in (s, e):
        command.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm",
                             help="diffusion: the ancestral loop over all T steps, or DDIM")  # fmt: skip
        command.add_argument("--steps", type=int, default=None, help="diffusion, --sampler ddim: number of steps "
                             "(default: 50)")  # fmt: skip
        command.add_argument("--eta", type=float, default=0.0, help="diffusion, --sampler ddim: 0 deterministic, "
                             "1 stochastic")  # fmt: skip
        command.add_argument("--guidance", type=float, default=0.0,
                             help="ddpm-cond: classifier-free guidance rho, eps = (1 + rho) eps(x, c) - rho eps(x)")
    for command in (t, s, e):
        command.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (mpenv.device)")
        command.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    commands.add_parser("list", help="the models and data sets")
    return parser


def sample_options(args: argparse.Namespace) -> dict[str, Any]:
    """The diffusion sampler flags of ``sample`` and ``eval``."""
    return {key: getattr(args, key) for key in ("sampler", "steps", "eta", "guidance")}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            from generative.data import DATASETS, TOY_DENSITIES

            print("models:", ", ".join(MODELS))
            print("data:", ", ".join(DATASETS), f"(toy: {', '.join(TOY_DENSITIES)})")
            return 0
        check_args(args)
        if args.command == "train":
            if args.model is None and not args.resume:
                raise ValueError(f"name a model ({', '.join(MODELS)}) or --resume a run")
            if args.model is not None and not args.resume:
                model_class(args.model)
            return train(args)
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        device = pick_device(args.device)
        model, config = load_run(args.run_dir, device)
        if args.command == "sample":
            inputs = None
            if any(hasattr(model, a) for a in ("super_resolve", "translates", "control_of")):  # on the test images
                inputs = load_data(config["data"], config["seed"], False, config.get("binarize", "none"))[2]
            samples = draw_samples(model, args.n, args.seed, device, args.temperature, inputs, **sample_options(args))
            sample_figure(samples, f"{config['model']} on {config['data']}").savefig(args.out, dpi=120)
            print(f"wrote {args.n} samples to {args.out}")
            return 0
        _, _, test_split = load_data(config["data"], config["seed"], is_conditional(model),
                                     config.get("binarize", "none"))  # fmt: skip
        report(model, config, test_split, k=args.iwae_k, sample_options=sample_options(args))
        return 0
    except (ValueError, CheckpointError, NotImplementedError) as err:
        print(f"mpenv-gen: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
