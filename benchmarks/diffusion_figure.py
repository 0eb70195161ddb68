"""Diffusion figures from trained ``mpenv-gen`` runs: the reverse process, the guidance sweep, ControlNet and
inpainting (the README's docs/diffusion_reverse.png, docs/diffusion_guidance.png, docs/diffusion_controlnet.png
and docs/diffusion_inpaint.png).

Reverse process (``--ddpm RUN``): 8 ancestral samples, each row ``x_t`` at t = 1000, 900, ..., 100, then the
sample; ``x_t`` is drawn as ``(x_t + 1) / 2`` clipped to [0, 1].

Guidance sweep (``--cond RUN``, a ``ddpm-cond`` run): for each ``rho`` of ``--rhos``, 360 samples with the test
images' labels (seed 0, ``--sampler``), their Frechet distance to the 360 test images and the share the shipped
classifier reads as their label; a row of samples of the digits 0-9 per ``rho``.

ControlNet (``--controlnet RUN``): 10 test digits' controls, the base's samples from the same noise (which ignore
them) and the controlled samples (``--sampler``), titled with the mean IoU of the samples' own control maps with
the controls over the 360 test images, controlled against the base's.

Inpainting (``--ddpm RUN``): the first 120 test digits with the bottom half hidden, filled by replacement
(``resample=1``) and by RePaint (``resample=5``); 10 shown, titled with the share of the 120 the classifier reads as
the original digit.

    python benchmarks/diffusion_figure.py --ddpm runs/<ddpm> --cond runs/<ddpm-cond> --controlnet runs/<controlnet>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure

from agents.plots import save_figure
from generative import data, metrics
from generative.diffusion import inpaint, reverse_process
from generative.train import image_grid, load_run


def test_split(config: dict, labels: bool = False):
    return data.load(config["data"], seed=config["seed"], labels=labels).test


def reverse_figure(run: str, out: Path) -> None:
    model, _ = load_run(run, torch.device("cpu"))
    T = model.schedule.steps
    torch.manual_seed(0)
    x_T = torch.randn(8, *model.input_shape)
    trajectory: list[torch.Tensor] = []  # x_{t-1} after the step from t: x_t is entry T - t - 1
    with torch.no_grad():
        x_0 = reverse_process(model.sampling_eps(None, 0.0), model.schedule, x_T, trajectory=trajectory)
    keep = list(range(T - T // 10, 0, -(T // 10)))  # 900, 800, ..., 100
    shown = [x_T] + [trajectory[T - t - 1] for t in keep]
    columns = torch.stack([((x + 1) / 2).clamp(0, 1) for x in shown] + [model.to_data_space(x_0)], 1)
    fig = Figure(figsize=(7, 5.4), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image_grid(columns.flatten(0, 1), columns=columns.shape[1]), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")  # fmt: skip
    ax.set_xticks([(i + 0.5) * (columns.shape[-1] + 1) for i in range(columns.shape[1])],
                  [str(T)] + [str(t) for t in keep] + ["0"])  # fmt: skip
    ax.set_yticks([])
    ax.set_xlabel("t")
    ax.set_title("the reverse process: x_T ~ N(0, I) to a sample (ancestral, sigma_t^2 = beta_t)")
    save_figure(fig, out / "diffusion_reverse.png")


def guidance_figure(run: str, out: Path, rhos: list[float], sampler: str) -> None:
    model, config = load_run(run, torch.device("cpu"))
    x, y = test_split(config, labels=True)
    classifier = metrics.load_classifier(image_size=x.shape[-1])
    kwargs = {"sampler": sampler} if sampler == "ddim" else {}
    fds, accuracies, rows = [], [], []
    for rho in rhos:
        torch.manual_seed(0)
        fake = model.sample(len(x), y, guidance=rho, **kwargs)
        fds.append(metrics.sample_quality(x, fake)["fd"])
        accuracies.append(metrics.accuracy(classifier, fake, y))
        torch.manual_seed(1)
        rows.append(model.sample(10, torch.arange(10), guidance=rho, **kwargs))
        print(f"rho {rho}: FD {fds[-1]:.1f}, accuracy {accuracies[-1]:.3f}", flush=True)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.1])
    ax = left.add_subplot()
    ax.plot(rhos, fds, "o-", color="tab:red", label="FD to test (left axis)")
    ax.set_xlabel("guidance rho")
    ax.set_ylabel("Frechet distance", color="tab:red")
    twin = ax.twinx()
    twin.plot(rhos, accuracies, "s-", color="tab:blue")
    twin.set_ylabel("classified as their label", color="tab:blue")
    ax.set_title(f"classifier-free guidance, 360 samples each ({sampler})")
    ax2 = right.add_subplot()
    grid = torch.cat(rows)
    ax2.imshow(image_grid(grid, columns=10), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax2.set_xticks([])
    ax2.set_yticks([(i + 0.5) * (grid.shape[-1] + 1) for i in range(len(rhos))], [f"rho {r:g}" for r in rhos])
    ax2.set_title("digits 0-9, the same noise in every row")
    save_figure(fig, out / "diffusion_guidance.png")


def controlnet_figure(run: str, out: Path, sampler: str) -> None:
    model, config = load_run(run, torch.device("cpu"))
    x = test_split(config)
    control = model.control_of(x)
    torch.manual_seed(0)
    controlled = model.sample(len(x), control, sampler=sampler)
    torch.manual_seed(0)
    free = model.base.sample(len(x), sampler=sampler)
    with_control, without = model.agreement(controlled, control), model.agreement(free, control)
    grid = torch.cat([control[:10], free[:10], controlled[:10]])
    fig = Figure(figsize=(6, 2.4), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image_grid(grid, columns=10), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(i + 0.5) * (x.shape[-1] + 1) for i in range(3)], [f"{model.control}", "base", "ControlNet"])
    ax.set_title(f"{model.control} control: IoU {with_control:.2f} controlled, {without:.2f} base (360 test digits)",
                 fontsize=9)  # fmt: skip
    save_figure(fig, out / "diffusion_controlnet.png")
    print(f"controlnet: IoU {with_control:.3f} against the base's {without:.3f}")


def inpaint_figure(run: str, out: Path) -> None:
    model, config = load_run(run, torch.device("cpu"))
    x, y = (part[:120] for part in test_split(config, labels=True))
    mask = torch.zeros_like(x)
    mask[..., : x.shape[-2] // 2, :] = 1
    classifier = metrics.load_classifier(image_size=x.shape[-1])
    rows, titles = [x[:10], (x * mask)[:10]], []
    for resample in (1, 5):
        torch.manual_seed(0)
        filled = inpaint(model, x, mask, resample=resample)
        rows.append(filled[:10])
        titles.append(f"resample {resample}: {metrics.accuracy(classifier, filled, y):.2f}")
        print(f"inpainting, {titles[-1]} classified as the original", flush=True)
    grid = torch.cat(rows)
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image_grid(grid, columns=10), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(i + 0.5) * (x.shape[-1] + 1) for i in range(4)], ["test", "top half", "replace", "RePaint x5"])
    ax.set_title("inpainting the bottom half; classified as the original: " + ", ".join(titles), fontsize=9)
    save_figure(fig, out / "diffusion_inpaint.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ddpm", help="a ddpm run: the reverse process and inpainting")
    parser.add_argument("--cond", help="a ddpm-cond run: the guidance sweep")
    parser.add_argument("--controlnet", help="a controlnet run")
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm", help="guidance sweep and ControlNet "
                        "(DDIM: 50 steps)")  # fmt: skip
    parser.add_argument("--out-dir", default="docs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out_dir)
    if args.ddpm:
        reverse_figure(args.ddpm, out)
        inpaint_figure(args.ddpm, out)
    if args.cond:
        guidance_figure(args.cond, out, args.rhos, args.sampler)
    if args.controlnet:
        controlnet_figure(args.controlnet, out, args.sampler)


if __name__ == "__main__":
    main()
