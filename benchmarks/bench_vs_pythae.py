"""Head to head with pythae (PyPI ``pythae``): the VAE on binarized digits, same architecture, likelihood,
optimizer, batch size and number of epochs, run one after the other in this process.

Model: our ``generative.vae.VAE((1, 8, 8))`` with its defaults (MLP encoder 64 -> 256 -> ReLU -> 2 x 8 for
(mu, log-variance), decoder 8 -> 256 -> ReLU -> 64 Bernoulli logits, prior N(0, I)) and pythae's ``VAE`` with
``VAEConfig(reconstruction_loss="bce")`` and custom ``BaseEncoder`` / ``BaseDecoder`` modules holding the same
layers. pythae's "bce" loss is ``F.binary_cross_entropy`` on probabilities, so its decoder ends in a sigmoid;
ours takes the logits (``binary_cross_entropy_with_logits``): the same Bernoulli likelihood. For every seed
both start from the same initial weights (pythae's networks are copies of ours before training).

Training: Adam, lr 1e-3, batch 64, a fixed number of epochs on the 1,221 training digits with no early
stopping; both evaluate the 216 validation digits after every epoch and keep the weights of the best
validation epoch (our ``fit`` with ``patience`` = epochs; pythae's ``BaseTrainer`` always does this). pythae
runs twice:

- ``pythae trainer``: its ``TrainingPipeline`` with a ``BaseTrainerConfig``, the way its users train
  (per-example ``Dataset`` + ``DataLoader`` collation, tqdm bars, here sent to /dev/null, and one final
  save of the model to a temporary directory; no checkpoints: ``steps_saving=None``).
- ``pythae loop``: pythae's model, its ``forward(...).loss``, inside our training loop (``generative.fit``):
  the model and loss cost alone, with the loop, batching and validation identical to ours.

images/s = epochs x 1,221 / wall seconds of the whole training call. Test NLL (nats per image, 360 test
digits) is computed by the same code for every model: our IWAE bound with k = 1000 (``VAE.log_prob(x, k)``;
pythae's trained networks are loaded into a ``VAE``, checked to give its encoder's ``embedding`` /
``log_covariance`` and, through a sigmoid, its decoder's ``reconstruction``), with the same random draws for
every model of a seed. pythae's own ``get_nll`` (importance sampling with 1000 samples, a log-likelihood:
negated here) is a cross-check. Ratios are ours / pythae.

    python benchmarks/bench_vs_pythae.py                  # about 1 minute on 2 busy cores
    python benchmarks/bench_vs_pythae.py --epochs 30 --seeds 1   # quicker

Needs ``pip install pythae`` (``pip install -e .[bench]``). Single-threaded torch for both.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import logging
import math
import os
import statistics
import tempfile
import time
from importlib.metadata import version

import torch
from torch import Tensor, nn

from generative import data
from generative.fit import fit
from generative.vae import VAE

INPUT_SHAPE = (1, 8, 8)
BATCH_SIZE = 64  # generative.fit's defaults
LR = 1e-3
K = 1000  # importance samples of the test NLL
IMPLEMENTATIONS = ("mpenv", "pythae trainer", "pythae loop")


# --------------------------------------------------------------------------------------------------- pythae side


def pythae_classes() -> tuple[type, type]:
    """pythae encoder and decoder around our MLPs (defined lazily: pythae is an optional dependency)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, net: nn.Sequential):
            BaseEncoder.__init__(self)
            self.net = net

        def forward(self, x: Tensor) -> ModelOutput:
            mu, log_var = self.net(x.flatten(1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)  # pythae's log_covariance is log sigma^2

    class Decoder(BaseDecoder):
        def __init__(self, net: nn.Sequential):
            BaseDecoder.__init__(self)
            self.net = net

        def forward(self, z: Tensor) -> ModelOutput:
            probs = torch.sigmoid(self.net(z))  # pythae's "bce" loss wants probabilities
            return ModelOutput(reconstruction=probs.reshape(*z.shape[:-1], *INPUT_SHAPE))

    return Encoder, Decoder


def pythae_vae(initial: VAE) -> nn.Module:
    """A pythae VAE whose encoder and decoder are copies of ``initial``'s networks (same weights)."""
    from pythae.models import VAE as PythaeVAE
    from pythae.models import VAEConfig

    encoder, decoder = pythae_classes()
    config = VAEConfig(input_dim=INPUT_SHAPE, latent_dim=initial.latent_dim, reconstruction_loss="bce")
    return PythaeVAE(config, encoder=encoder(copy.deepcopy(initial.encoder)),
                     decoder=decoder(copy.deepcopy(initial.decoder)))  # fmt: skip


class PythaeLoss(nn.Module):
    """pythae's model behind the ``loss(x)`` that ``generative.fit`` minimises: its forward pass's loss."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def loss(self, x: Tensor) -> Tensor:
        return self.model({"data": x}).loss


def as_ours(model: nn.Module, test: Tensor) -> VAE:
    """pythae's trained networks in one of our VAEs, after checking that it computes what pythae computes:
    the same (mu, log-variance) and, through the sigmoid, the same Bernoulli probabilities."""
    vae = VAE(INPUT_SHAPE, latent_dim=model.model_config.latent_dim)
    vae.encoder.load_state_dict(model.encoder.net.state_dict())
    vae.decoder.load_state_dict(model.decoder.net.state_dict())
    vae.eval()
    with torch.no_grad():
        theirs = model.encoder(test)
        mu, log_var = vae.encode(test)
        torch.testing.assert_close(mu, theirs.embedding)
        torch.testing.assert_close(log_var, theirs.log_covariance)
        z = torch.randn(len(test), vae.latent_dim)
        torch.testing.assert_close(torch.sigmoid(vae.decode(z)), model.decoder(z).reconstruction)
    return vae


# ------------------------------------------------------------------------------------------------------ training


def train_ours(initial: VAE, train: Tensor, val: Tensor, epochs: int, seed: int) -> tuple[VAE, float]:
    vae = copy.deepcopy(initial)
    start = time.perf_counter()
    fit(vae, train, val, epochs=epochs, batch_size=BATCH_SIZE, lr=LR, patience=epochs, seed=seed)
    return vae, time.perf_counter() - start


def train_pythae_loop(initial: VAE, train: Tensor, val: Tensor, epochs: int, seed: int) -> tuple[nn.Module, float]:
    model = pythae_vae(initial)
    start = time.perf_counter()
    fit(PythaeLoss(model), train, val, epochs=epochs, batch_size=BATCH_SIZE, lr=LR, patience=epochs, seed=seed)
    return model, time.perf_counter() - start


def train_pythae_trainer(initial: VAE, train: Tensor, val: Tensor, epochs: int, seed: int,
                         workdir: str) -> tuple[nn.Module, float]:  # fmt: skip
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    model = pythae_vae(initial)
    config = BaseTrainerConfig(output_dir=os.path.join(workdir, f"seed{seed}"), num_epochs=epochs,
                               learning_rate=LR, per_device_train_batch_size=BATCH_SIZE,
                               per_device_eval_batch_size=BATCH_SIZE, optimizer_cls="Adam", steps_saving=None,
                               seed=seed, no_cuda=True)  # fmt: skip
    pipeline = TrainingPipeline(model=model, training_config=config)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        start = time.perf_counter()
        pipeline(train_data=train, eval_data=val)
        seconds = time.perf_counter() - start
    return pipeline.trainer._best_model, seconds  # the best validation epoch's model, as it saves


# ---------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def iwae_nll(vae: VAE, test: Tensor, seed: int, chunk: int = 60) -> float:
    """Mean -L_K over the test set (nats per image), the same draws for every model of a seed."""
    torch.manual_seed(10_000 + seed)
    vae.eval()
    return float(torch.cat([-vae.log_prob(x, k=K) for x in test.split(chunk)]).mean())


@torch.no_grad()
def pythae_nll(model: nn.Module, test: Tensor, seed: int) -> float:
    """pythae's own estimate: ``get_nll`` returns the mean log p(x) over the examples."""
    torch.manual_seed(20_000 + seed)
    model.eval()
    return -float(model.get_nll(test, n_samples=K, batch_size=K))


# ---------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=100, help="training epochs, the same for every run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--no-get-nll", action="store_true", help="skip pythae's own get_nll cross-check")
    args = parser.parse_args()
    torch.set_num_threads(1)
    importlib.import_module("torch._dynamo")  # the first optimizer imports it (~1 s): keep that out of the timings
    import pythae.models  # noqa: F401  (imported, and their loggers created, before any timing)
    import pythae.pipelines  # noqa: F401
    import pythae.trainers  # noqa: F401

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)  # its per-epoch console log

    train, val, test = data.digits(binarize=True, seed=0)
    n_train = len(train)
    print(f"torch {torch.__version__}, pythae {version('pythae')}; digits-binary: train {n_train}, val {len(val)}, "
          f"test {len(test)}; {args.epochs} epochs, batch {BATCH_SIZE}, Adam lr {LR}, 1 thread")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in IMPLEMENTATIONS}
    workdir_handle = tempfile.TemporaryDirectory(prefix="bench_vs_pythae_")  # pythae's saved models, removed at exit
    workdir = workdir_handle.name
    warm = VAE(INPUT_SHAPE)  # one untimed epoch of each: first-call costs stay out of the first timed run
    train_ours(warm, train, val, 1, 0), train_pythae_loop(warm, train, val, 1, 0)
    train_pythae_trainer(warm, train, val, 1, 0, workdir)
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        initial = VAE(INPUT_SHAPE)  # the defaults: latent 8, hidden (256,), Bernoulli decoder
        order = IMPLEMENTATIONS[seed % 3 :] + IMPLEMENTATIONS[: seed % 3]  # rotate, so no one always runs first
        for name in order:
            torch.manual_seed(seed)
            if name == "mpenv":
                vae, seconds = train_ours(initial, train, val, args.epochs, seed)
                own = float("nan")
            else:
                if name == "pythae loop":
                    model, seconds = train_pythae_loop(initial, train, val, args.epochs, seed)
                else:
                    model, seconds = train_pythae_trainer(initial, train, val, args.epochs, seed, workdir)
                vae = as_ours(model, test)
                own = float("nan") if args.no_get_nll else pythae_nll(model, test, seed)
            result = {"ips": args.epochs * n_train / seconds, "seconds": seconds,
                      "nll": iwae_nll(vae, test, seed), "own_nll": own}  # fmt: skip
            rows[name].append(result)
            cross_check = "" if math.isnan(own) else f", pythae get_nll {own:.3f}"
            print(f"seed {seed} {name:15s}: {result['ips']:8.0f} images/s, {seconds:6.1f} s, test NLL (IWAE "
                  f"k={K}) {result['nll']:.3f}{cross_check}", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    def spread(name: str, key: str) -> str:
        return ", ".join(f"{r[key]:.{3 if 'nll' in key else 0}f}" for r in rows[name])

    print(f"\n| implementation | images/s (median) | per seed | test NLL, IWAE k={K} [nats] (median) | per seed "
          f"| pythae get_nll [nats] (median) |")
    print("|---|---|---|---|---|---|")
    for name in IMPLEMENTATIONS:
        own = "" if name == "mpenv" or args.no_get_nll else f"{median(name, 'own_nll'):.3f}"
        print(f"| {name} | {median(name, 'ips'):,.0f} | {spread(name, 'ips')} | {median(name, 'nll'):.3f} "
              f"| {spread(name, 'nll')} | {own} |")
    for other in IMPLEMENTATIONS[1:]:
        ratio = median("mpenv", "ips") / median(other, "ips")
        gap = median("mpenv", "nll") - median(other, "nll")
        print(f"| ratio mpenv / {other} | {ratio:.2f}x | | {gap:+.3f} nats (difference) | | |")
    print(f"\n(seeds 0-{args.seeds - 1}, {args.epochs} epochs x {n_train} images each; images/s: the whole training "
          f"call, per-epoch validation included; NLL: the best validation epoch's weights)")


if __name__ == "__main__":
    main()
