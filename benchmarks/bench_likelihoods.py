"""The likelihood table: every generative model on binarized digits and Omniglot-28, one process, one budget each.

For each (data set, model): seed 0, Adam, minibatches of 64, early stopping on the validation split with the
model's patience and a wall-clock cap, the best validation weights kept (``generative.fit.fit``); then the test
NLL in nats and bits/dim (exact for the autoregressive models; the importance-weighted bound with k = 1000 for
the VAE, and the ELBO for the VQ-VAE, both upper bounds on the NLL) and the training time. The independent
Bernoulli model (pixel marginals of the training set, add-1/2 smoothed) is the baseline. On digits, sample
quality too: the Frechet distance between 360 samples and the 360 test images in the shipped classifier's
feature space (``generative.metrics``; the training images themselves score about 10).

    python benchmarks/bench_likelihoods.py                      # both data sets, about 15 minutes on 2 cores
    python benchmarks/bench_likelihoods.py --data digits-binary --cap 60
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from generative import data
from generative.autoregressive import FVSBN, MADE, NADE, CausalTransformer, GatedPixelCNN, PixelCNN, WaveNet
from generative.fit import fit
from generative.metrics import sample_quality
from generative.train import mean_nll
from generative.vae import VAE
from generative.vqvae import VQVAE
from mpenv.device import seed_everything

# name -> (constructor, learning rate, patience)
MODELS: dict[str, tuple[Callable[[tuple[int, ...]], nn.Module], float, int]] = {
    "FVSBN": (lambda s: FVSBN(s), 3e-3, 10),
    "NADE": (lambda s: NADE(s), 3e-3, 10),
    "MADE": (lambda s: MADE(s), 3e-3, 10),
    "PixelCNN": (lambda s: PixelCNN(s), 1e-3, 5),
    "GatedPixelCNN": (lambda s: GatedPixelCNN(s), 1e-3, 5),
    "WaveNet": (lambda s: WaveNet(s), 1e-3, 5),
    "CausalTransformer": (lambda s: CausalTransformer(s), 1e-3, 5),
    "VAE": (lambda s: VAE(s), 3e-3, 15),
    "VQVAE": (lambda s: VQVAE(s), 3e-4, 20),  # a slower codebook: at 1e-3 the bound rises while codes churn
}


def bernoulli_baseline(train: torch.Tensor, test: torch.Tensor) -> float:
    p = (train.sum(0) + 0.5) / (len(train) + 1.0)
    return float(-(test * p.log() + (1 - test) * (1 - p).log()).flatten(1).sum(1).mean())


def run(name: str, dataset: str, cap: float) -> tuple[float, float, float | None]:
    train, val, test = data.load(dataset, seed=0)
    seed_everything(0)
    build, lr, patience = MODELS[name]
    model = build(tuple(train.shape[1:]))
    start = time.perf_counter()
    fit(model, train, val, epochs=500, lr=lr, patience=patience, max_seconds=cap, threads=None)  # --threads rules
    seconds = time.perf_counter() - start
    nll = mean_nll(model, test, **({"k": 1000} if name == "VAE" else {}))
    fd = None
    if dataset.startswith("digits"):
        torch.manual_seed(1)
        fd = sample_quality(test, model.sample(len(test)))["fd"]
    return nll, seconds, fd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits-binary", "omniglot28"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--cap", type=float, default=60.0, help="training seconds per model at most")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| data | model | test NLL (nats) | bits/dim | training time (s) | FD to test (digits) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for dataset in args.data:
        train, _, test = data.load(dataset, seed=0)
        dims = math.prod(train.shape[1:])
        baseline = bernoulli_baseline(train, test)
        fd = ""
        if dataset.startswith("digits"):
            marginals = (train.sum(0) + 0.5) / (len(train) + 1.0)
            fd = f"{sample_quality(test, torch.bernoulli(marginals.expand(len(test), -1, -1, -1)))['fd']:.0f}"
        bits = baseline / dims / math.log(2)
        print(f"| {dataset} | independent Bernoulli | {baseline:.2f} | {bits:.4f} | 0 | {fd} |")
        for name in args.models:
            nll, seconds, fd = run(name, dataset, args.cap)
            bound = " (bound)" if name in ("VAE", "VQVAE") else ""
            fd_text = "" if fd is None else f"{fd:.0f}"
            print(f"| {dataset} | {name}{bound} | {nll:.2f} | {nll / dims / math.log(2):.4f} | {seconds:.0f} | "
                  f"{fd_text} |", flush=True)


if __name__ == "__main__":
    main()
