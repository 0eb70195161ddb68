"""The optimizers of ``mpenv.nn.optim`` on two 2D losses: their paths over the contours (docs/optimizers.png).

Left, the Rosenbrock function ``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`` from (-1.5, 2) for 1,000 steps: a curved
narrow valley whose floor is almost flat, the minimum 0 at (1, 1). Right, an ill-conditioned quadratic
``f(z) = 1/2 z^T A z`` with eigenvalues 1 and 50 (condition number 50), its axes turned by 30 degrees so that no
coordinate is an eigenvector (AdaGrad's, RMSProp's and Adam's per-coordinate scaling cannot undo the conditioning),
from (-4, -1) for 100 steps. Each optimizer's lr was picked by hand on a short grid of 4-5 values per loss (SGD's
near its stability limit, 2 / lambda_max: about 1e-3 on the Rosenbrock valley's walls, 0.04 on the quadratic) and
is in its legend with the final loss; Polyak momentum and Nesterov use mu = 0.9, the rest their defaults (RMSProp
alpha = 0.99, Adam betas = (0.9, 0.999)). Nesterov's path is the course's iterate ``theta_t`` (``form="lookahead"``).
Small dots mark every 20th of the steps, a large dot where each optimizer stopped (on the Rosenbrock function Polyak's
and Nesterov's stop at nearly the same point, one dot over the other). Everything is deterministic (float64, fixed
starting points); the final losses are printed too.

    python benchmarks/plot_optimizers.py --out docs/optimizers.png
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Callable

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: the figure renders with Agg, without a display
from PIL import Image

from mpenv.nn.optim import SGD, AdaGrad, Adam, Nesterov, RMSProp

Loss = Callable[[torch.Tensor], torch.Tensor]
MakeOptimizer = Callable[[list[torch.Tensor], float], torch.optim.Optimizer]

# name -> (colour, optimizer given params and lr, lr on the Rosenbrock function, lr on the quadratic)
OPTIMIZERS: dict[str, tuple[str, MakeOptimizer, float, float]] = {
    "SGD": ("C0", lambda p, lr: SGD(p, lr=lr), 1e-3, 3.5e-2),
    "Polyak momentum": ("C1", lambda p, lr: SGD(p, lr=lr, momentum=0.9), 2e-4, 1e-2),
    "Nesterov": ("C2", lambda p, lr: Nesterov(p, lr=lr, momentum=0.9), 2e-4, 1e-2),
    "AdaGrad": ("C3", lambda p, lr: AdaGrad(p, lr=lr), 0.5, 1.0),
    "RMSProp": ("C4", lambda p, lr: RMSProp(p, lr=lr), 3e-3, 1e-1),
    "Adam": ("C5", lambda p, lr: Adam(p, lr=lr), 2e-2, 2e-1),
}


def rosenbrock(z: torch.Tensor) -> torch.Tensor:
    """Works on a point ``[2]`` and on a grid ``[2, H, W]`` alike."""
    return (1 - z[0]) ** 2 + 100 * (z[1] - z[0] ** 2) ** 2


def ill_conditioned_quadratic() -> Loss:
    angle = math.radians(30.0)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                            dtype=torch.float64)  # fmt: skip
    a = rotation @ torch.diag(torch.tensor([1.0, 50.0], dtype=torch.float64)) @ rotation.T

    def quadratic(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.einsum("i...,ij,j...->...", z, a, z)

    return quadratic


def path(loss: Loss, start: tuple[float, float], make: MakeOptimizer, lr: float, steps: int) -> np.ndarray:
    """``[steps + 1, 2]``: the start and every iterate."""
    z = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = make([z], lr)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(z)
        value.backward()
        return value

    points = [z.detach().clone()]
    for _ in range(steps):
        optimizer.step(closure)
        points.append(z.detach().clone())
    return torch.stack(points).numpy()


def panel(ax, loss: Loss, title: str, start: tuple[float, float], steps: int, lr_index: int,
          extent: tuple[float, float, float, float], minimum: tuple[float, float],
          legend_loc: str, equal_axes: bool = False) -> dict[str, float]:  # fmt: skip
    """Log-spaced contours of ``loss``, one path per optimizer; returns the final losses."""
    x0, x1, y0, y1 = extent
    xs, ys = torch.linspace(x0, x1, 300, dtype=torch.float64), torch.linspace(y0, y1, 300, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))
    values = loss(grid).numpy()
    levels = np.logspace(math.log10(max(values.min(), 1e-3)), math.log10(values.max()), 18)
    ax.contour(xs.numpy(), ys.numpy(), values, levels=levels, colors="0.7", linewidths=0.6)
    finals = {}
    for i, (name, (colour, make, *lrs)) in enumerate(OPTIMIZERS.items()):
        points = path(loss, start, make, lrs[lr_index], steps)
        finals[name] = loss(torch.from_numpy(points[-1])).item()
        # Where paths overlap (the Rosenbrock valley) the ones drawn first are wider, so each shows as a stripe; a dot
        # every steps/20 iterates tells the speeds apart, and a large dot marks where the optimizer stopped.
        width = 3.0 - 0.4 * i
        ax.plot(points[:, 0], points[:, 1], color=colour, linewidth=width, marker="o", markersize=width + 1.5,
                markevery=max(1, steps // 20), label=f"{name}, lr={lrs[lr_index]:g}: f={finals[name]:.2g}")  # fmt: skip
        ax.plot(*points[-1], "o", color=colour, markersize=8, markeredgecolor="k", zorder=3)
    ax.plot(*start, "ko", markersize=5)
    ax.plot(*minimum, "k*", markersize=10)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), title=f"{title}, {steps} steps", xlabel="x", ylabel="y")
    if equal_axes:
        ax.set_aspect("equal")
    ax.legend(fontsize=7, loc=legend_loc, framealpha=0.9)
    return finals


def save_small_png(fig: Figure, path: str) -> None:
    """At most 128 colours (a palette PNG): the antialiased lines make a full-colour file about 200 KB, this about a
    third of it, with no visible difference."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=128).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="optimizers.png", help="output PNG")
    parser.add_argument("--rosenbrock-steps", type=int, default=1000)
    parser.add_argument("--quadratic-steps", type=int, default=100)
    args = parser.parse_args()

    fig = Figure(figsize=(10, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    results = {
        "Rosenbrock": panel(left, rosenbrock, "Rosenbrock from (-1.5, 2)", (-1.5, 2.0), args.rosenbrock_steps, 0,
                            (-2.0, 1.5, -0.5, 3.0), (1.0, 1.0), "upper right"),
        "quadratic": panel(right, ill_conditioned_quadratic(), "quadratic, condition number 50", (-4.0, -1.0),
                           args.quadratic_steps, 1, (-4.5, 1.5, -3.0, 1.5), (0.0, 0.0), "upper left", equal_axes=True),
    }  # fmt: skip
    print(f"{'final loss':>16} " + " ".join(f"{name:>11}" for name in results))
    for name in OPTIMIZERS:
        print(f"{name:>16} " + " ".join(f"{finals[name]:11.3g}" for finals in results.values()))
    save_small_png(fig, args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
