"""Head to head with normflows (PyPI ``normflows``): RealNVP on two moons, same architecture, optimizer, batch,
learning rate and number of steps, trained side by side in this process; and the LU 1x1 convolution against the
plain ``slogdet`` one.

Models (vectors of 2 features, ``n_couplings`` affine couplings, default 8):

- ours: ``generative.flows.RealNVP((2,), n_couplings, hidden)``: each coupling's MLP ``2 -> 64 -> 64 -> 4`` sees
  the masked input ``b * x`` and gives ``(s, t)`` per feature; masks alternate even / odd features; the scale
  is bounded, ``s = 2 tanh(s_raw / 2)``.
- normflows: its RealNVP recipe, ``n_couplings`` x [``AffineCouplingBlock(MLP([1, 64, 64, 2], init_zeros=True),
  scale_map="exp")``, ``Permute(2, mode="swap")``] over ``DiagGaussian(2, trainable=False)``: each coupling's MLP
  ``1 -> 64 -> 64 -> 2`` sees the untouched half and gives its shift and scale; the scale is ``exp`` of the raw
  output (unbounded). Both last layers start at zero (every coupling starts as the identity), ReLU between.

Training: the same loop for both (no ``generative.fit``: the loop, batching and data are identical, so the
measurement is the model and optimizer cost): Adam, ``--lr`` (default 1e-3), batch 256 drawn with replacement
from the 10,000 training points of ``generative.data.load("toy:two_moons")`` by one seeded index sequence
shared by both, ``--steps`` steps (default 2,000). The steps are cut into ``--rounds`` rounds that alternate
ours / normflows (the order flips every round), each round timed on its own; steps/s is the median over the
rounds, which keeps the ratio meaningful on a loaded machine. Test NLL: nats per point on the 2,000 test points
of the same split, the same points for both (the true density's NLL is about 0.29 nats, see ``tests/test_flows.py``).
Single-threaded torch (the ``mpenv-gen`` default for these small networks), float32, CPU.

1x1 convolutions: ``InvConv1x1`` (``y = W x`` and ``H W log|det W|`` from ``slogdet``, O(C^3)) against
``LUInvConv1x1`` (``W = P L (U + diag s)`` rebuilt from its factors, ``log|det W| = sum log|s|``) with the same
``W``, on a batch ``[--conv-batch, C, 8, 8]`` at C = 64 and 256: ``W`` and ``log|det W|`` alone (``slogdet`` of
the parameter, or the product of the LU factors and ``sum log|s|``), the forward pass with its log-determinant,
and forward + backward of ``sum(y) + logdet`` (a training step's cost), each the median of alternating rounds.

    python benchmarks/bench_flows.py                       # about 45 s on 2 busy cores (--seeds 3: 1 min 45 s)
    python benchmarks/bench_flows.py --steps 6000 --rounds 20 --seeds 3

Needs ``pip install normflows`` (``pip install -e .[bench]``); without it the normflows part is skipped with a
message and the 1x1 convolution timings still run.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import torch
from torch import Tensor, nn

from generative import data
from generative.flows import InvConv1x1, LUInvConv1x1, RealNVP
from generative.flows.conv1x1 import random_rotation

BATCH_SIZE = 256


# ------------------------------------------------------------------------------------------------- the models


def ours(n_couplings: int, hidden: tuple[int, ...]) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """Our RealNVP and its per-point log-density."""
    flow = RealNVP((2,), n_couplings=n_couplings, hidden=hidden)
    return flow, flow.log_prob


def theirs(n_couplings: int, hidden: tuple[int, ...]) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """normflows' RealNVP with the same couplings and widths, and its per-point log-density."""
    import normflows as nf

    layers: list[nn.Module] = []
    for _ in range(n_couplings):
        net = nf.nets.MLP([1, *hidden, 2], init_zeros=True)
        layers += [nf.flows.AffineCouplingBlock(net, scale_map="exp"), nf.flows.Permute(2, mode="swap")]
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), layers)
    return flow, flow.log_prob


def train_steps(model: nn.Module, log_prob: Callable[[Tensor], Tensor], optimizer: torch.optim.Optimizer,
                x: Tensor, batches: Tensor) -> float:  # fmt: skip
    """Adam steps on ``x[batch]`` for every row of ``batches``; the wall seconds they took."""
    model.train()
    start = time.perf_counter()
    for idx in batches:
        loss = -log_prob(x[idx]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def test_nll(log_prob: Callable[[Tensor], Tensor], model: nn.Module, x: Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(-log_prob(x).double().mean())


def head_to_head(args: argparse.Namespace, seed: int) -> dict[str, tuple[float, float]]:
    """``{name: (median steps/s, test NLL)}`` of ours and normflows, trained side by side."""
    train, _, test = data.load("toy:two_moons", seed=0)
    hidden = tuple(args.hidden)
    models = {}
    for name, make in (("mpenv", ours), ("normflows", theirs)):
        torch.manual_seed(seed)
        model, log_prob = make(args.couplings, hidden)
        models[name] = (model, log_prob, torch.optim.Adam(model.parameters(), lr=args.lr))
    g = torch.Generator().manual_seed(seed)
    batches = torch.randint(len(train), (args.steps, BATCH_SIZE), generator=g)
    rates: dict[str, list[float]] = {name: [] for name in models}
    for r, chunk in enumerate(batches.chunk(args.rounds)):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for name in order:
            model, log_prob, optimizer = models[name]
            rates[name].append(len(chunk) / train_steps(model, log_prob, optimizer, train, chunk))
    return {name: (statistics.median(rates[name]), test_nll(models[name][1], models[name][0], test))
            for name in models}  # fmt: skip


# ---------------------------------------------------------------------------------------------- 1x1 convolutions


def time_convs(channels: int, batch: int, rounds: int, repeats: int) -> dict[str, tuple[float, ...]]:
    """``{name: (W and log-det ms, forward ms, forward + backward ms)}`` of the plain and the LU 1x1 convolution
    with the same ``W``."""
    weight = random_rotation(channels, seed=1)
    convs = {"plain slogdet": InvConv1x1(channels, weight), "LU": LUInvConv1x1(channels, weight)}
    x = torch.randn(batch, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    y_plain, ld_plain = convs["plain slogdet"](x)
    y_lu, ld_lu = convs["LU"](x)
    assert torch.allclose(y_plain, y_lu, atol=1e-4) and torch.allclose(ld_plain, ld_lu, atol=1e-2)

    def matrix(conv: nn.Module) -> None:  # W and log|det W| alone: slogdet, or the product of the LU factors
        with torch.no_grad():
            if isinstance(conv, LUInvConv1x1):
                conv.weight, conv.log_s.sum()
            else:
                torch.linalg.slogdet(conv.weight)

    def forward(conv: nn.Module) -> None:
        with torch.no_grad():
            conv(x)

    def step(conv: nn.Module) -> None:
        y, logdet = conv(x)
        (y.sum() + logdet.sum()).backward()

    out: dict[str, list[list[float]]] = {name: [[], [], []] for name in convs}
    for r in range(rounds):
        for name in (list(convs) if r % 2 == 0 else list(convs)[::-1]):
            for k, fn in enumerate((matrix, forward, step)):
                start = time.perf_counter()
                for _ in range(repeats):
                    fn(convs[name])
                out[name][k].append(1000 * (time.perf_counter() - start) / repeats)
    return {name: tuple(statistics.median(t) for t in times) for name, times in out.items()}


# ------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each model (default 2000)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating timed rounds (default 10)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds of the head to head (default 1)")
    parser.add_argument("--couplings", type=int, default=8, help="affine couplings (default 8)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64], help="MLP widths (default 64 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--conv-batch", type=int, default=16, help="1x1 conv batch [B, C, 8, 8] (default 16)")
    parser.add_argument("--conv-rounds", type=int, default=9, help="1x1 conv alternating rounds (default 9)")
    parser.add_argument("--skip-normflows", action="store_true", help="only the 1x1 convolution timings")
    args = parser.parse_args()
    for flag in ("steps", "rounds", "seeds", "couplings", "conv_batch", "conv_rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.rounds > args.steps:
        parser.error("--rounds must not exceed --steps")
    torch.set_num_threads(1)

    if args.skip_normflows:
        pass
    elif importlib.util.find_spec("normflows") is None:
        print("normflows is not installed (pip install normflows, or pip install -e .[bench]): skipping the head to "
              "head; the 1x1 convolution timings follow")  # fmt: skip
    else:
        print(f"RealNVP on two moons: {args.couplings} affine couplings, MLP widths {args.hidden}, Adam lr "
              f"{args.lr}, batch {BATCH_SIZE}, {args.steps} steps; steps/s median of {args.rounds} alternating "
              f"rounds; test NLL on 2,000 test points (nats); normflows {version('normflows')}, torch "
              f"{torch.__version__}, 1 thread")  # fmt: skip
        print(f"{'seed':>4} {'mpenv steps/s':>14} {'normflows steps/s':>18} {'ratio':>6} {'mpenv NLL':>10} "
              f"{'normflows NLL':>14}")  # fmt: skip
        ratios, gaps = [], []
        for seed in range(args.seeds):
            res = head_to_head(args, seed)
            (ours_rate, ours_nll), (their_rate, their_nll) = res["mpenv"], res["normflows"]
            ratios.append(ours_rate / their_rate)
            gaps.append(ours_nll - their_nll)
            print(f"{seed:>4} {ours_rate:>14.1f} {their_rate:>18.1f} {ratios[-1]:>6.2f} {ours_nll:>10.4f} "
                  f"{their_nll:>14.4f}")  # fmt: skip
        met = min(ratios) >= 1.5 and max(gaps) <= 0.0
        print(f"throughput ratio (ours / normflows) {min(ratios):.2f}-{max(ratios):.2f}; NLL ours - normflows "
              f"{min(gaps):+.4f} to {max(gaps):+.4f} nats; goal >= 1.5x at equal or better NLL: "
              f"{'met' if met else 'NOT met'}")  # fmt: skip

    print(f"\ninvertible 1x1 convolution, batch [{args.conv_batch}, C, 8, 8], ms per call, median of "
          f"{args.conv_rounds} alternating rounds")  # fmt: skip
    print(f"{'C':>4} | {'W, logdet: plain':>16} {'LU':>7} {'ratio':>6} | {'forward: plain':>14} {'LU':>7} "
          f"{'ratio':>6} | {'fwd+bwd: plain':>14} {'LU':>7} {'ratio':>6}")  # fmt: skip
    for channels in (64, 256):
        res = time_convs(channels, args.conv_batch, args.conv_rounds, repeats=50 if channels == 64 else 10)
        cells = [f"{p:>{w}.3f} {lu:>7.3f} {p / lu:>6.2f}"
                 for w, p, lu in zip((16, 14, 14), res["plain slogdet"], res["LU"], strict=True)]  # fmt: skip
        print(f"{channels:>4} | " + " | ".join(cells) + "   (ratio: plain / LU, > 1: LU faster)")


if __name__ == "__main__":
    main()
