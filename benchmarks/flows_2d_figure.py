"""2D densities learned vs true: a grid of heatmaps (rows: two moons, checkerboard, eight Gaussians; columns:
the true density, RealNVP, the spline flow), the README's docs/flows_2d.png.

Each flow is trained as the slow tests in ``tests/test_flows.py`` train them on two moons: ``generative.fit`` on
the 10,000 training points of ``generative.data.load("toy:NAME", seed=0)``, batch 256 (40 steps per epoch), Adam
at ``--lr`` for ``--epochs`` epochs, then at a tenth of it for ``--settle-epochs`` more (the best validation
epoch's weights are kept): 2,400 steps by default for every panel (the tests give the checkerboard's spline
flow 8,000: ``--epochs 140 --settle-epochs 60 --lr 5e-3``, which applies to every panel here). The
checkerboard's spline flow has 16 bins and tail bound 3 (the tests' setting); everything else the models'
defaults (RealNVP: 8 affine couplings; SplineFlow: 4 couplings, 8 bins; MLPs 64-64). Each panel's title is the
test NLL (nats) on the 2,000 test points; the true column's is the true density's NLL on the same points (two
moons has no closed form in ``generative.data``: its true panel is a histogram of 400,000 samples, without an
NLL). One colour scale per row, from 0 to the true panel's peak (higher model densities saturate), so the
columns compare.

    python benchmarks/flows_2d_figure.py --out docs/flows_2d.png        # 40 + 20 epochs: 2,400 steps per model
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from matplotlib.figure import Figure

from agents.plots import save_figure
from generative import data
from generative.fit import fit_phases
from generative.flows import RealNVP, SplineFlow

DENSITIES = {"two_moons": ((-1.5, 2.5), (-1.0, 1.5)), "checkerboard": ((-2.5, 2.5), (-2.5, 2.5)),
             "eight_gaussians": ((-3.0, 3.0), (-3.0, 3.0))}  # name -> (x range, y range) of the heatmap  # fmt: skip
GRID = 200  # heatmap pixels per side
BATCH = 256


def make_model(name: str, density: str) -> torch.nn.Module:
    if name == "RealNVP":
        return RealNVP((2,))
    return SplineFlow((2,), bins=16, tail_bound=3.0) if density == "checkerboard" else SplineFlow((2,))


def train(model: torch.nn.Module, density: str, phases: list[tuple[int, float]]) -> None:
    train_split, val_split, _ = data.load(f"toy:{density}", seed=0)
    fit_phases(model, train_split, val_split, phases, batch_size=BATCH)


def grid(extent: tuple[tuple[float, float], tuple[float, float]]) -> torch.Tensor:
    """``[GRID * GRID, 2]`` pixel centres, rows from the top (largest y) down, as ``imshow`` draws them."""
    (x0, x1), (y0, y1) = extent
    xs = torch.linspace(x0, x1, GRID)
    ys = torch.linspace(y1, y0, GRID)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)


def true_panel(density: str, extent) -> tuple[np.ndarray, str]:
    """The true density on the grid (a histogram for two moons) and its panel title."""
    if density == "two_moons":
        x = data.sample(density, 400_000, seed=1).numpy()
        (x0, x1), (y0, y1) = extent
        hist, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=GRID, range=[[y0, y1], [x0, x1]], density=True)
        return hist[::-1], "true (histogram)"
    test = data.load(f"toy:{density}", seed=0).test
    nll = float(-data.log_density(density, test).double().mean())
    return data.log_density(density, grid(extent)).exp().reshape(GRID, GRID).numpy(), f"true: NLL {nll:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="flows_2d.png", help="output PNG")
    parser.add_argument("--epochs", type=int, default=40, help="epochs at --lr (40 steps each)")
    parser.add_argument("--settle-epochs", type=int, default=20, help="epochs at --lr / 10 after that")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate of the first phase")
    args = parser.parse_args()
    if args.epochs < 1 or args.settle_epochs < 0:
        parser.error("--epochs must be at least 1 and --settle-epochs at least 0")
    if not args.out.endswith(".png"):
        parser.error(f"--out: expected a .png path, got {args.out!r}")
    phases = [(args.epochs, args.lr)] + ([(args.settle_epochs, args.lr / 10)] if args.settle_epochs else [])

    fig = Figure(figsize=(7.5, 7.5), layout="constrained")
    axes = fig.subplots(len(DENSITIES), 3)
    for row, (density, extent) in enumerate(DENSITIES.items()):
        panels = [true_panel(density, extent)]
        test = data.load(f"toy:{density}", seed=0).test
        for name in ("RealNVP", "SplineFlow"):
            torch.manual_seed(0)
            model, start = make_model(name, density), time.perf_counter()
            train(model, density, phases)
            with torch.no_grad():
                nll = float(-model.log_prob(test).double().mean())
                heat = model.log_prob(grid(extent)).exp().reshape(GRID, GRID).numpy()
            print(f"{density:>15} {name:>10}: test NLL {nll:.3f} nats ({time.perf_counter() - start:.0f} s)")
            panels.append((heat, f"{name}: NLL {nll:.3f}"))
        top = float(panels[0][0].max())  # one colour scale per row: 0 to the true density's peak (flows saturate)
        for col, (heat, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(heat, extent=(*extent[0], *extent[1]), cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(density.replace("_", " "))
    steps = 40 * sum(epochs for epochs, _ in phases)
    fig.suptitle(f"densities learned vs true ({steps:,} steps per model, test NLL in nats)", fontsize=10)
    print(f"-> {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
