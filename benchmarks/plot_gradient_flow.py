"""Vanishing and exploding gradients, measured: ``||dh_T/dh_{T-j}||_2`` against the lag j for a vanilla tanh RNN
whose ``W_hh`` has spectral radius 0.8, 1.0 and 1.2, and the LSTM's ``||dc_T/dc_{T-j}||_2`` -- the figure
docs/rnn_gradient_flow.png.

    python benchmarks/plot_gradient_flow.py --out docs/rnn_gradient_flow.png      # a few seconds

The norms come from :func:`mpenv.nn.recurrent.jacobian_product_norms`: products of the hand-written one-step
Jacobians ``diag(1 - h_t^2) W_hh`` along each sequence's own trajectory (no autograd), the spectral norm (the largest
singular value: the most a unit change of ``h_{T-j}`` can move ``h_T``). Each curve is the median over
``--sequences`` random input sequences (inputs N(0, 1)), the band the 10-90% range.

- Vanilla RNN, H = ``--hidden``: ``W_hh`` a Gaussian matrix scaled to spectral radius rho (the largest |eigenvalue|),
  the rest torch's initialization. Dashed: the same network made linear (``nonlinearity="identity"``), whose norm is
  ``||W_hh^j||``, growing like ``rho^j``. The tanh curves lie below their linear twins (tanh' <= 1): rho = 0.8 vanishes
  geometrically, rho = 1.0 vanishes more slowly, and rho = 1.2 does not explode as the linear one does: the units
  saturate, and their tanh' ~ 0 cuts the products down.
- LSTM, H = ``--hidden``, torch's initialization with the forget gate's bias at 1 and at 3 (``--forget-biases``):
  the cell-state block of the product of the full (h, c) Jacobians, i.e. ``dc_T/dc_{T-j}`` along every path. Along
  the carousel alone it would be ``prod diag(f_t)``: with bias 1, ``f ~ sigmoid(1) = 0.73`` and the LSTM forgets
  about as fast as the rho = 1 RNN; with bias 3, ``f ~ 0.95`` and the gradient survives a hundred steps (it even
  grows slowly, to about 40 at j = 100: the paths through h add to the carousel's diag(f)). A learned
  bias (or an input-dependent f) opens the gate without touching a weight matrix -- the knob the vanilla RNN does
  not have: its only way to keep the products from vanishing is a larger ``W_hh``, which makes them explode.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from mpenv.nn.recurrent import LSTM, RNN, jacobian_product_norms


def log10_norm_bands(model: RNN | LSTM, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The median and the 10% and 90% quantiles over the sequences of log10 ||d s_T / d s_{T-j}||, j = 0 .. T."""
    logs = jacobian_product_norms(model, x).log10()  # [T + 1, N]
    return logs.median(dim=1).values, logs.quantile(0.1, dim=1), logs.quantile(0.9, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/rnn_gradient_flow.png"))
    parser.add_argument("--steps", type=int, default=100, help="sequence length T")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forget-biases", type=float, nargs="+", default=[1.0, 3.0], help="one LSTM curve each")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (batched SVDs of small matrices slow down with more threads on a busy machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.steps, args.sequences, args.inputs, generator=g, dtype=torch.float64)
    w = torch.randn(args.hidden, args.hidden, generator=g, dtype=torch.float64)
    w = w / torch.linalg.eigvals(w).abs().max()  # spectral radius 1
    lags = torch.arange(args.steps + 1)

    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    for rho, colour in ((0.8, "tab:blue"), (1.0, "tab:green"), (1.2, "tab:red")):
        for nonlinearity, style in (("tanh", "-"), ("identity", "--")):
            rnn = RNN(args.inputs, args.hidden, nonlinearity, dtype=torch.float64,
                      generator=torch.Generator().manual_seed(args.seed))  # fmt: skip
            rnn.weight_hh_l0.copy_(rho * w)
            median, low, high = log10_norm_bands(rnn, x)
            label = f"tanh RNN, rho = {rho}" if nonlinearity == "tanh" else None
            ax.plot(lags, median, style, color=colour, lw=1.8 if nonlinearity == "tanh" else 1.0, label=label)
            if nonlinearity == "tanh":
                ax.fill_between(lags, low, high, color=colour, alpha=0.15, lw=0)
    for forget_bias, style in zip(args.forget_biases, ("-", ":", "-.", "--"), strict=False):
        lstm = LSTM(args.inputs, args.hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(args.seed))
        lstm.init_forget_bias(forget_bias)
        median, low, high = log10_norm_bands(lstm, x)
        label = f"LSTM ||dc_T / dc_(T-j)||, forget bias {forget_bias:g}"
        ax.plot(lags, median, style, color="black", lw=1.8, label=label)
        ax.fill_between(lags, low, high, color="black", alpha=0.12, lw=0)
    ax.plot([], [], "--", color="grey", lw=1.0, label="linear RNN, same W_hh")

    # plain text, not mathtext: no font lookups, the same look on every machine
    ax.set_xlabel("lag j (steps back from T)")
    ax.set_ylabel("log10 ||dh_T / dh_(T-j)||  (spectral norm)")
    ax.set_title(f"Gradient flow back through time (H = {args.hidden}, median and 10-90% of {args.sequences} "
                 "random sequences)", fontsize=10)  # fmt: skip
    ax.set_xlim(0, args.steps)
    ax.set_ylim(-12, 6)
    ax.axhline(0, color="grey", lw=0.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
