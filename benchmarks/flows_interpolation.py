"""Latent interpolations between test digits with a flow (the README's docs/flows_interpolation.png).

A flow is a bijection, so every image has exactly one latent and every latent one image: encode two test digits,
walk the straight line between their latents, ``z_t = (1 - t) z_a + t z_b``, and decode each point,
``x_t = f^{-1}(z_t)`` (quantized back to the 17 grey levels). The ends are the test images themselves (up to
the quantization: ``encode`` takes each pixel's bin centre, ``decode`` rounds back to the bin).

The flow: ``RealNVP((1, 8, 8), n_bins=17)`` (``--model glow``: ``Glow((1, 8, 8), n_bins=17)``), trained by
``generative.fit`` on the grey digits' training split (Adam 1e-3, batch 64, ``--epochs`` epochs at most, early
stopping after 10 without validation progress, the best validation epoch's weights kept), seed 0. One row per
pair of test digits of different classes (the first test image of each class).

    python benchmarks/flows_interpolation.py --out docs/flows_interpolation.png
"""

from __future__ import annotations

import argparse
import time

import torch
from matplotlib.figure import Figure

from agents.plots import save_figure
from generative import data
from generative.fit import fit
from generative.flows import Glow, RealNVP

LEVELS = 17  # the digits' grey levels k / 16
PAIRS = ((0, 6), (1, 7), (2, 3), (4, 9), (5, 8))  # classes of the two ends of each row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="flows_interpolation.png", help="output PNG")
    parser.add_argument("--model", choices=("realnvp", "glow"), default="realnvp", help="the flow")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs at most")
    parser.add_argument("--steps", type=int, default=8, help="points on each line, the two ends included")
    args = parser.parse_args()
    if args.epochs < 1 or args.steps < 2:
        parser.error("--epochs must be at least 1 and --steps at least 2")
    if not args.out.endswith(".png"):
        parser.error(f"--out: expected a .png path, got {args.out!r}")

    train, val, (test_x, test_y) = data.digits(labels=True)
    torch.manual_seed(0)
    flow = (RealNVP if args.model == "realnvp" else Glow)((1, 8, 8), n_bins=LEVELS)
    start = time.perf_counter()
    history = fit(flow, train[0], val[0], epochs=args.epochs)
    with torch.no_grad():
        nll = float(-flow.log_prob(test_x).double().mean())
    print(f"{args.model}: {history.epochs} epochs in {time.perf_counter() - start:.0f} s, test NLL bound "
          f"{nll:.2f} nats")  # fmt: skip

    first = {int(c): int((test_y == c).nonzero()[0]) for c in range(10)}
    a = test_x[[first[i] for i, _ in PAIRS]]
    b = test_x[[first[j] for _, j in PAIRS]]
    t = torch.linspace(0, 1, args.steps)
    with torch.no_grad():
        z_a, z_b = flow.encode(a), flow.encode(b)
        z = (1 - t)[None, :, None, None, None] * z_a[:, None] + t[None, :, None, None, None] * z_b[:, None]
        images = flow.decode(z.flatten(0, 1)).reshape(len(PAIRS), args.steps, 8, 8)
    ends_error = max(float((images[:, 0] - a[:, 0]).abs().max()), float((images[:, -1] - b[:, 0]).abs().max()))
    print(f"largest pixel error of the decoded ends against the test images: {ends_error:.3g}")

    fig = Figure(figsize=(0.9 * args.steps, 0.95 * len(PAIRS) + 0.4), layout="constrained")
    axes = fig.subplots(len(PAIRS), args.steps, squeeze=False)
    for row in range(len(PAIRS)):
        for col in range(args.steps):
            ax = axes[row, col]
            ax.imshow(images[row, col].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t = {float(t[col]):.2f}", fontsize=8)
    name = "RealNVP" if args.model == "realnvp" else "Glow"
    fig.suptitle(f"{name} on grey digits (test NLL bound {nll:.1f} nats): z = (1 - t) z_a + t z_b, decoded",
                 fontsize=9)  # fmt: skip
    print(f"-> {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
