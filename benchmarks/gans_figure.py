"""GAN figures: the 2D variants on the eight Gaussians side by side, DCGAN digits, an inversion / inpainting
strip, translation pairs and StyleGAN's style mixing, the README's docs/gans_2d.png, docs/gans_digits.png,
docs/gans_inversion.png, docs/gans_translation.png and docs/gans_style_mixing.png.

2D: the minimax (saturating), non-saturating, WGAN-GP and unrolled GANs (``generative.gans`` defaults: MLPs
128-128, latent 8; WGAN-GP 5 critic steps with penalty 10; unrolled 5 look-ahead steps) trained by ``fit_gan`` on
the 10,000 training points of ``toy:eight_gaussians`` for ``--steps`` generator steps, batch 256, Adam
(0.5, 0.999) at ``--lr``; each panel shows 2,000 samples over the 2,000 test points (grey), titled with the modes
covered and the fraction of samples within 3 standard deviations of a mode, and the seconds it took. One row per
``--steps`` value, so the figure shows how fast each variant spreads.

Digits: DCGAN (channels 64, latent 32) for ``--epochs`` epochs on the grey and on the binarized digits, 64
samples each from fixed noise, titled with the Fréchet distance of 360 samples to the 360 test digits in the
shipped classifier's features (the independent-pixel baseline is about 250).

Inversion: the grey-digits DCGAN (as above) inverts 10 test digits (``invert``: 300 Adam steps on ``z``, 4
restarts, pixel loss) and inpaints them with the bottom half hidden; rows: the test digits, their inversions
``G(z*)``, the digits with the bottom half hidden, the inpainted digits. Titles give the mean squared error per
pixel of the inversions and on the hidden half.

Translation (docs/gans_translation.png): pix2pix on rotated digits, CycleGAN on edge maps without pairs, and
pix2pix with BicycleGAN's 4-dimensional code on edge maps (two codes per input), 20 epochs each; 10 test digits'
inputs and outputs, titled with the share of the 360 test translations the classifier reads as their digit.

Style mixing (docs/gans_style_mixing.png): StyleGAN on the grey digits for 80 epochs; the image in row r,
column c takes its first 4 styles (the layers at 2x2 and 4x4) from row r's latent and its last 3 (the 8x8
layers and the output) from column c's.

    python benchmarks/gans_figure.py --out-dir docs              # about 9 min on 2 busy cores
    python benchmarks/gans_figure.py --figures inversion         # one of them
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from agents.plots import save_figure
from generative import data, metrics
from generative.gans import (
    DCGAN,
    GAN,
    WGANGP,
    CycleGAN,
    Pix2Pix,
    StyleGAN,
    UnrolledGAN,
    apply_task,
    fit_gan,
    inpaint,
    invert,
)
from generative.train import image_grid

VARIANTS = {"minimax": lambda: GAN((2,), loss="minimax"), "non-saturating": lambda: GAN((2,)),
            "WGAN-GP": lambda: WGANGP((2,)), "unrolled (5)": lambda: UnrolledGAN((2,))}  # fmt: skip


def figure_2d(steps: list[int], lr: float, seed: int) -> Figure:
    train_split, _, test_split = data.load("toy:eight_gaussians", seed=0)
    modes = data.mixture_modes("eight_gaussians")
    fig = Figure(figsize=(3 * len(VARIANTS), 3 * len(steps)), layout="constrained")
    axes = fig.subplots(len(steps), len(VARIANTS), squeeze=False)
    for row, budget in enumerate(steps):
        for col, (name, make) in enumerate(VARIANTS.items()):
            torch.manual_seed(seed)
            gan, start = make(), time.perf_counter()
            fit_gan(gan, train_split, steps=budget, batch_size=256, lr=lr, seed=seed)
            seconds = time.perf_counter() - start
            x = gan.sample(2000)
            covered, good = metrics.mode_coverage(x, *modes)
            ax = axes[row, col]
            ax.scatter(test_split[:, 0], test_split[:, 1], s=1, c="0.8")
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
            ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"{name}, {budget} steps\n{covered}/8 modes, {good:.0%} good, {seconds:.0f} s", fontsize=9)
            print(f"{name:>15} {budget:>5} steps: {covered}/8 modes, high-quality {good:.3f}, {seconds:.1f} s",
                  flush=True)  # fmt: skip
    return fig


def figure_digits(epochs: int, seed: int) -> Figure:
    classifier = metrics.load_classifier()
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    for ax, name in zip(fig.subplots(1, 2), ("digits", "digits-binary"), strict=True):
        train_split, _, test_split = data.load(name, seed=0)
        torch.manual_seed(seed)
        gan, start = DCGAN((1, 8, 8)), time.perf_counter()
        fit_gan(gan, train_split, epochs=epochs, seed=seed)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            fd = metrics.frechet_distance(classifier.features(test_split), classifier.features(gan.sample(360)))
        torch.manual_seed(0)
        ax.imshow(image_grid(gan.sample(64)), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
        ax.set_title(f"DCGAN on {name}, {epochs} epochs ({seconds:.0f} s)\nFD to test {fd:.1f}", fontsize=9)
        print(f"DCGAN on {name}: FD {fd:.2f}, {seconds:.1f} s", flush=True)
    return fig


def figure_inversion(epochs: int, seed: int) -> Figure:
    (train_x, _), _, (test_x, _) = data.digits(labels=True, seed=0)
    torch.manual_seed(seed)
    gan = DCGAN((1, 8, 8))
    fit_gan(gan, train_x, epochs=epochs, seed=seed)
    x = test_x[:10]
    _, inverted, error = invert(gan, x, steps=300, restarts=4)
    mask = torch.ones(1, 1, 8, 8)
    mask[..., 4:, :] = 0
    filled = inpaint(gan, x, mask, steps=300, restarts=4)
    hidden_error = float((filled - x)[..., 4:, :].square().mean())
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image_grid(torch.cat([x, inverted, x * mask, filled]), columns=10), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")  # fmt: skip
    ax.axis("off")
    ax.set_title(f"rows: test digits; inverted G(z*) (MSE {float(error.mean()):.4f}); bottom half hidden; "
                 f"inpainted (MSE on the hidden half {hidden_error:.3f})", fontsize=9)  # fmt: skip
    print(f"inversion MSE {float(error.mean()):.4f}, inpainting MSE on the hidden half {hidden_error:.4f}")
    return fig


def figure_translation(seed: int, epochs: int = 20) -> Figure:
    (train_x, _), _, (test_x, test_y) = data.digits(labels=True, seed=0)
    classifier = metrics.load_classifier()
    x = test_x[:10]
    fig = Figure(figsize=(6, 7.2), layout="constrained")
    axes = fig.subplots(3, 1, height_ratios=[2, 2, 3])
    for ax, (name, make, task) in zip(axes, (
            ("pix2pix", lambda: Pix2Pix((1, 8, 8), task="rotated"), "rotated"),
            ("CycleGAN, unpaired", lambda: CycleGAN((1, 8, 8), task="edges"), "edges"),
            ("pix2pix + BicycleGAN code", lambda: Pix2Pix((1, 8, 8), task="edges", noise_dim=4), "edges")),
            strict=True):  # fmt: skip
        torch.manual_seed(seed)
        model = make()
        fit_gan(model, train_x, epochs=epochs, seed=seed)
        outputs = [model.translate(apply_task(task, x)) for _ in range(2 if "code" in name else 1)]
        with torch.no_grad():
            accuracy = float((classifier(model.translate(apply_task(task, test_x))).argmax(1) == test_y).float().mean())
        ax.imshow(image_grid(torch.cat([apply_task(task, x), *outputs]), columns=10), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")  # fmt: skip
        ax.axis("off")
        rows = "input; outputs for two codes" if "code" in name else "input; output"
        ax.set_title(f"{name}, {task} -> digits ({rows}): {accuracy:.1%} of test outputs read right", fontsize=8)
        print(f"{name}: {task} -> digits, {accuracy:.3f} of the 360 test translations read as their digit")
    return fig


def figure_style_mixing(seed: int, epochs: int = 80) -> Figure:
    train_split, _, test_split = data.load("digits", seed=0)
    torch.manual_seed(seed)
    gan, start = StyleGAN((1, 8, 8)), time.perf_counter()
    fit_gan(gan, train_split, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - start
    classifier = metrics.load_classifier()
    with torch.no_grad():
        fd = metrics.frechet_distance(classifier.features(test_split), classifier.features(gan.sample(360)))
    generator = gan.sampling_generator.eval()
    torch.manual_seed(1)
    coarse, fine = torch.randn(5, gan.latent_dim), torch.randn(6, gan.latent_dim)
    with torch.no_grad():
        torch.manual_seed(2)  # the same noise maps in every image
        rows = [torch.cat([torch.zeros(1, 1, 8, 8), generator(fine)])]
        for z in coarse:
            torch.manual_seed(2)
            rows.append(torch.cat([generator(z[None]), generator.mix(z[None].expand(6, -1), fine, 4)]))
    fig = Figure(figsize=(5, 5.4), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image_grid(torch.cat(rows), columns=7), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"StyleGAN, {epochs} epochs ({seconds:.0f} s), FD {fd:.1f}\nrow: the 4 coarse styles (2x2, 4x4) of "
                 "its left image\ncolumn: the 3 fine styles (8x8, output) of its top image", fontsize=8)  # fmt: skip
    print(f"StyleGAN on digits: FD {fd:.2f}, {seconds:.1f} s")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 2000], help="generator steps (one row each)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate for the 2D GANs")
    parser.add_argument("--epochs", type=int, default=60, help="DCGAN epochs on the digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="docs")
    figures = ["2d", "digits", "inversion", "translation", "style_mixing"]
    parser.add_argument("--figures", nargs="+", choices=figures, default=figures)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out_dir)
    makers = {"2d": lambda: figure_2d(args.steps, args.lr, args.seed),
              "digits": lambda: figure_digits(args.epochs, args.seed),
              "inversion": lambda: figure_inversion(args.epochs, args.seed),
              "translation": lambda: figure_translation(args.seed),
              "style_mixing": lambda: figure_style_mixing(args.seed)}  # fmt: skip
    for name in args.figures:
        print(f"wrote {save_figure(makers[name](), out / f'gans_{name}.png')}")


if __name__ == "__main__":
    main()
