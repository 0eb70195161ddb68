"""Universal approximation: one hidden layer of 2, 4, 8 and 32 tanh units fitted to f(x) = sin(3x) + 0.3 x^2 on
[-2, 2]: docs/universal_approximation.png.

The course's point: a network ``y = sum_j v_j tanh(w_j x + b_j) + c`` with enough hidden units approximates any
continuous function on a compact interval as closely as wanted (Cybenko 1989, Hornik 1991). Each hidden unit
contributes one smoothed step ``v_j tanh(w_j x + b_j)`` (the faint lines of each panel; they and ``c`` sum to the
fit), so 2 units draw one bend and miss a turn of ``sin(3x)``, while 4 already follow the curve and 8 lie on it.
The theorem is about existence: past 8 units the error here is set by the optimization, not by the width, and 32
units end about where 8 do. The MSEs at the defaults: 2 units 5.2e-2, 4 units 2.8e-4, 8 units 3.9e-6, 32 units
9.2e-6.

Every network is :class:`mpenv.nn.MLP` ``[1, width, 1]`` (Glorot init from ``--seed``, zero biases) trained by
:func:`mpenv.nn.mlp.fit` (the hand-written backward, no autograd) on 200 evenly spaced points, full batch: Adam at
``--lr`` for ``--steps`` steps, then at a tenth of it for ``--steps / 2`` more. The MSE is measured on 1,001
evenly spaced points of the interval. Left: each width's fit against the target; right: the training loss.

    python benchmarks/plot_universal_approximation.py --out docs/universal_approximation.png     # about a minute
"""

from __future__ import annotations

import argparse
import io
import time

import torch
from matplotlib.figure import Figure
from PIL import Image

from mpenv.device import torch_threads
from mpenv.nn.mlp import MLP, fit

WIDTHS = (2, 4, 8, 32)
LOSS_EVERY = 20  # plot every 20th step's loss: Adam's small oscillations would fill the PNG with detail
Y_LIMITS = (-1.8, 2.6)  # the target's range with room for the legend; large unit contributions are cut off


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x) + 0.3 * x**2


def train(width: int, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int) -> tuple[MLP, list[float]]:
    mlp = MLP([1, width, 1], activation="tanh", generator=torch.Generator().manual_seed(seed))
    history = fit(mlp, x, y, loss="mse", steps=steps, lr=lr, optimizer="adam")
    history += fit(mlp, x, y, loss="mse", steps=steps // 2, lr=lr / 10, optimizer="adam")
    return mlp, history


def unit_contributions(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """``[N, width]``: each hidden unit's term ``v_j tanh(w_j x + b_j)`` of the output."""
    (w, v), (b, _) = mlp.weights, mlp.biases
    return torch.tanh(x @ w.T + b) * v[0]


def save_png(fig: Figure, path: str) -> None:
    """The figure at 100 dpi, reduced to a 256-colour palette: the antialiased lines otherwise take the PNG past
    100 KB, and a palette of 256 colours shows no difference on a figure of ten line colours."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="universal_approximation.png", help="output PNG")
    parser.add_argument("--steps", type=int, default=12000, help="Adam steps at --lr (then half as many at lr / 10)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate of the first phase")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights")
    args = parser.parse_args()
    if not args.out.endswith(".png"):
        parser.error(f"--out: expected a .png path, got {args.out!r}")

    x_train = torch.linspace(-2, 2, 200, dtype=torch.float64)[:, None]
    x_test = torch.linspace(-2, 2, 1001, dtype=torch.float64)[:, None]
    y_train, y_test = target(x_train), target(x_test)

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=(1.45, 1))
    panels = left.subplots(2, 2, sharex=True, sharey=True).ravel()
    losses = right.subplots()
    for width, ax, color in zip(WIDTHS, panels, ("C0", "C1", "C2", "C3"), strict=True):
        start = time.perf_counter()
        with torch_threads(1):  # matrices of at most 200 x 32: extra threads only add synchronization
            mlp, history = train(width, x_train, y_train, args.steps, args.lr, args.seed)
        prediction = mlp(x_test)
        mse = float(((prediction - y_test) ** 2).mean())
        print(f"{width:>3} tanh units: MSE {mse:.2e} ({time.perf_counter() - start:.1f} s)")

        xs = x_test[:, 0]
        ax.plot(xs, unit_contributions(mlp, x_test), color=color, linewidth=0.6, alpha=0.3)
        ax.plot(xs, y_test[:, 0], color="black", linewidth=3.0, alpha=0.3, label="target")
        ax.plot(xs, prediction[:, 0], color=color, linewidth=1.4, label=f"{width} units\nMSE {mse:.1e}")
        ax.set_ylim(*Y_LIMITS)
        ax.legend(fontsize=7, loc="upper center", frameon=False, ncols=2)
        ax.grid(alpha=0.3)
        steps = range(0, len(history), LOSS_EVERY)
        losses.plot(steps, history[::LOSS_EVERY], color=color, linewidth=1.0, label=f"{width} units: MSE {mse:.1e}")
    for ax in panels[2:]:
        ax.set_xlabel("x")
    left.suptitle("one hidden layer of tanh units vs sin(3x) + 0.3x²", fontsize=10)
    losses.set_yscale("log")
    losses.set_xlabel("Adam step")
    losses.set_title("training MSE (hand-written backward)", fontsize=10)
    losses.legend(fontsize=8)
    losses.grid(alpha=0.3)
    save_png(fig, args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
