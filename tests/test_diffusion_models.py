"""Diffusion models built on DDPM (generative.diffusion): ControlNet equals its base at initialization and
only trains its own parts, latent diffusion standardizes and decodes codes, inpainting keeps the known pixels
and with RePaint resampling reaches the exact conditional of a Gaussian, EMA weights, and ``mpenv-gen``'s
diffusion commands end to end."""

from __future__ import annotations

import math
import re

import pytest
import torch

from generative import train
from generative.autoencoder import Autoencoder
from generative.diffusion import DDPM, ControlNet, LatentDDPM, NoiseSchedule, coarse_mask, edge_map, inpaint, mean_iou


def randomized_base(**kwargs) -> DDPM:
    """An image DDPM whose zero-initialized layers are randomized, so its output is not trivially zero."""
    torch.manual_seed(0)
    base = DDPM((1, 8, 8), steps=50, channels=8, n_bins=2, **kwargs)
    for p in base.net.parameters():
        if not p.any():
            torch.nn.init.normal_(p, std=0.2)
    base.ema.load_state_dict(base.net.state_dict())
    return base.eval()


def test_controlnet_equals_its_base_at_initialization_bit_for_bit() -> None:
    base = randomized_base()
    control_net = ControlNet((1, 8, 8), base, control="edges").eval()
    x, t = torch.randn(6, 1, 8, 8), torch.tensor([1, 5, 10, 20, 40, 50])
    control = edge_map(torch.rand(6, 1, 8, 8))
    assert torch.equal(control_net.eps(x, t, control), base.eps(x, t))
    assert float(base.eps(x, t).abs().mean()) > 0.1  # the comparison is not of zeros
    torch.manual_seed(1)
    a = control_net.sample(4, control[:4], sampler="ddim", steps=10)
    torch.manual_seed(1)
    assert torch.equal(a, base.sample(4, sampler="ddim", steps=10))


def test_controlnet_trains_only_its_copy_hint_and_zero_convolutions() -> None:
    base = randomized_base()
    frozen = {k: v.clone() for k, v in base.state_dict().items()}
    control_net = ControlNet((1, 8, 8), base, control="mask")
    optimizer = torch.optim.Adam([p for p in control_net.parameters() if p.requires_grad], lr=1e-2)
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    for _ in range(3):
        loss = control_net.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(frozen[k], v) for k, v in base.state_dict().items())
    assert not base.training  # fit's train() does not switch the frozen base's mode
    control_net.train()
    assert not control_net.base.training
    assert any(p.abs().sum() > 0 for p in control_net.zero_convs.parameters())  # they left zero


@pytest.mark.slow
def test_controlnet_learns_to_follow_its_control() -> None:
    """The cheap learning test beside the shipped ControlNet (``tests/test_diffusion_learning.py`` loads it): a
    coarse-mask ControlNet on the shipped DDPM, 4 epochs of Adam 1e-3 at batch 64 (seed 0). The masks of its DDIM-20
    samples (eta 1) given 120 test digits' masks overlap those masks (mean IoU) at least 0.1 more than the base's
    samples from the same noise: measured 0.810, 0.777, 0.786 against 0.639 at seeds 0, 1, 2 (after 3 epochs 0.758,
    0.730, 0.729); about 12 CPU s. Its last weights, not ``fit``'s best-validation ones: the few-epoch validation
    loss is noisy enough to keep the first epoch's (0.66 at seed 1)."""
    from generative import data
    from generative.diffusion import load_digits_ddpm
    from generative.fit import batches
    from mpenv.device import seed_everything

    train_split, _, test = data.load("digits-binary", seed=0)
    test = test[:120]
    base = load_digits_ddpm()
    seed_everything(0)
    model = ControlNet((1, 8, 8), base, control="mask").train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        for (x,) in batches(train_split, 64, generator):
            loss = model.loss(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    control = model.control_of(test)
    torch.manual_seed(1)
    controlled = model.sample(len(test), control, sampler="ddim", steps=20, eta=1.0)
    torch.manual_seed(1)
    free = base.sample(len(test), sampler="ddim", steps=20, eta=1.0)
    with_control, without = model.agreement(controlled, control), model.agreement(free, control)
    print(f"mask IoU after 4 epochs: controlled {with_control:.3f}, base {without:.3f}")
    assert with_control > without + 0.1, (with_control, without)


def test_controls_and_their_agreement() -> None:
    """A step edge's Sobel map marks the two columns beside the step; the coarse mask marks 2x2 blocks; IoU 1 for
    identical maps, 0 for disjoint ones."""
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 1.0
    edges = edge_map(x)
    assert torch.equal(edges[0, 0].nonzero()[:, 1].unique(), torch.tensor([3, 4]))
    blob = torch.zeros(1, 1, 8, 8)
    blob[..., 2:4, 2:4] = 1.0
    assert torch.equal(coarse_mask(blob), blob)
    assert mean_iou(edges, edges) == 1.0 and mean_iou(edges, 1 - edges) == 0.0
    with pytest.raises(ValueError, match="unconditional image DDPM"):
        ControlNet((2,), DDPM((2,), hidden=(8,)))
    with pytest.raises(ValueError, match="unknown control 'depth'"):
        ControlNet((1, 8, 8), randomized_base(), control="depth")
    with pytest.raises(ValueError, match=r"control must be a \{0, 1\} image of shape \[2, 1, 8, 8\]"):
        ControlNet((1, 8, 8), randomized_base()).sample(2, torch.rand(2, 1, 8, 8))


def test_ema_follows_the_weights_with_its_decay() -> None:
    torch.manual_seed(0)
    model = DDPM((2,), steps=10, hidden=(8,), ema_decay=0.9)
    before = [p.clone() for p in model.ema.parameters()]
    optimizer = torch.optim.SGD(model.net.parameters(), lr=0.1)
    model.loss(torch.randn(32, 2)).backward()
    optimizer.step()
    model.after_step()
    for old, ema, new in zip(before, model.ema.parameters(), model.net.parameters(), strict=True):
        assert torch.allclose(ema, 0.9 * old + 0.1 * new)
    assert model.train().denoiser is model.net and model.eval().denoiser is model.ema
    assert DDPM((2,), hidden=(8,), ema_decay=None).eval().denoiser is not None
    with pytest.raises(ValueError, match="ema_decay must lie in"):
        DDPM((2,), ema_decay=1.0)


def test_latent_ddpm_standardizes_codes_and_decodes_samples() -> None:
    torch.manual_seed(0)
    autoencoder = Autoencoder((1, 8, 8), latent_dim=4, binary=True)
    model = LatentDDPM((1, 8, 8), autoencoder, steps=20, hidden=(16,))
    x = (torch.rand(64, 1, 8, 8) > 0.5).float()
    codes = model.codes(x)
    assert torch.allclose(codes.mean(0), torch.zeros(4), atol=1e-5) and torch.allclose(codes.std(0), torch.ones(4))
    assert bool(model.standardized) and torch.allclose(model.codes(x), codes)  # set once, by the first batch
    samples = model.sample(5, sampler="ddim", steps=5)
    assert samples.shape == (5, 1, 8, 8) and bool(((samples == 0) | (samples == 1)).all())
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    with pytest.raises(NotImplementedError, match="no likelihood"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="differs from the autoencoder's"):
        LatentDDPM((1, 4, 4), autoencoder)


# ------------------------------------------------------------------------------------------------ inpainting


def gaussian_ddpm(rho: float) -> DDPM:
    """A 2D DDPM whose network is the exact noise predictor of ``N(0, [[1, rho], [rho, 1]])``, on a 100-step
    schedule that still ends in noise (``alpha_bar_T`` about 5e-5)."""
    model = DDPM((2,), steps=100, hidden=(8,)).double()
    model.schedule = NoiseSchedule("linear", 100, beta_start=1e-3, beta_end=0.2)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)

    def network(xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        ab = model.schedule.at(model.schedule.alphas_cumprod, t, xt)[:, :, None]  # [N, 1, 1]
        marginal = ab * cov + (1 - ab) * torch.eye(2, dtype=torch.float64)
        score = -torch.linalg.solve(marginal, xt[:, :, None])[:, :, 0]
        return -(1 - ab[:, :, 0]).sqrt() * score

    model.network = network
    return model


def test_inpainting_reaches_the_exact_conditional_with_resampling() -> None:
    """Known ``x_1 = 1.5`` of a correlated Gaussian (rho 0.9): the filled ``x_2`` should be ``N(1.35, 0.19)``.
    Replacement alone (``resample=1``) lands far off (mean 0.92: the unknown part never sees the known one
    without noise); RePaint with 10 rounds per step gets the mean within 0.06 and the spread within 0.02
    (measured 1.316 and 0.441 on 8,000 samples), and so does it on 50 of the 100 steps respaced (1.310 and 0.446
    on 4,000; on 25 steps the mean falls 0.063 short). The known coordinate is returned exactly."""
    model, n = gaussian_ddpm(0.9), 4000
    known = torch.zeros(n, 2, dtype=torch.float64)
    known[:, 0] = 1.5
    mask = torch.zeros_like(known)
    mask[:, 0] = 1
    torch.manual_seed(0)
    plain = inpaint(model, known, mask, resample=1)
    torch.manual_seed(0)
    repaint = inpaint(model, known, mask, resample=10)
    target_mean, target_std = 0.9 * 1.5, math.sqrt(1 - 0.81)
    assert abs(float(plain[:, 1].mean()) - target_mean) > 0.3
    assert abs(float(repaint[:, 1].mean()) - target_mean) < 0.06
    assert abs(float(repaint[:, 1].std()) - target_std) < 0.02
    assert bool((repaint[:, 0] == 1.5).all()) and bool((plain[:, 0] == 1.5).all())
    torch.manual_seed(0)
    respaced = inpaint(model, known, mask, resample=10, steps=50)
    assert abs(float(respaced[:, 1].mean()) - target_mean) < 0.06
    assert abs(float(respaced[:, 1].std()) - target_std) < 0.02
    with pytest.raises(ValueError, match=r"steps must lie in 1..100"):
        inpaint(model, known, mask, steps=101)
    with pytest.raises(ValueError, match="mask must be a"):
        inpaint(model, known, mask[:, :1])
    with pytest.raises(ValueError, match="resample must be at least 1"):
        inpaint(model, known, mask, resample=0)


def test_inpainting_images_keeps_the_known_pixels() -> None:
    base = randomized_base()
    x = (torch.rand(3, 1, 8, 8) > 0.5).float()
    mask = torch.zeros_like(x)
    mask[..., :4, :] = 1  # the top half is known
    out = inpaint(base, x, mask, resample=2)
    assert torch.equal(out[..., :4, :], x[..., :4, :]) and bool(((out == 0) | (out == 1)).all())


# ------------------------------------------------------------------------------------------------ mpenv-gen


def test_cli_trains_samples_and_evaluates_the_diffusion_models(tmp_path, capsys) -> None:
    """``ddpm``, then ``controlnet`` on it, ``ddpm-cond`` with guidance, and ``latent-ddpm`` on an autoencoder run,
    each two epochs of a 20-step model; eval prints the bound and the sample quality."""
    logdir = tmp_path / "runs"

    def run(*argv: str) -> str:
        assert train.main(list(argv)) == 0
        return capsys.readouterr().out

    def new_run(model: str, kwargs: str, *extra: str) -> tuple[str, str]:
        before = set(logdir.iterdir()) if logdir.exists() else set()
        out = run("train", model, "--data", "digits-binary", "--epochs", "2", "--logdir", str(logdir),
                  "--model-kwargs", kwargs, "--sample-every", "1", *extra)  # fmt: skip
        (run_dir,) = set(logdir.iterdir()) - before
        return str(run_dir), out

    small = '{"steps": 20, "channels": 8}'
    ddpm_dir, out = new_run("ddpm", small)
    assert re.search(r"ddpm on digits-binary: test NLL <= [\d.]+ nats, [\d.]+ bits/dim \(variational bound, all 20 "
                     r"terms, sigma_t\^2: beta\)", out)  # fmt: skip
    assert re.search(r"360 samples \(ancestral sampling\) against the test images: FD [\d.]+", out)
    assert '"n_bins": 2' in (tmp_path / ddpm_dir / "config.json").read_text()
    out = run("eval", ddpm_dir, "--sampler", "ddim", "--steps", "5")
    assert "360 samples (sampler ddim, steps 5)" in out
    image = tmp_path / "s.png"
    assert "wrote 16 samples" in run("sample", ddpm_dir, "-n", "16", "--out", str(image), "--sampler", "ddim")
    assert image.is_file()

    _, out = new_run("controlnet", f'{{"base": "{ddpm_dir}", "control": "mask"}}')
    assert re.search(r"mask agreement \(mean IoU\) [\d.]+, the base's [\d.]+", out)

    cond_dir, _ = new_run("ddpm-cond", small)
    out = run("eval", cond_dir, "--guidance", "2", "--sampler", "ddim", "--steps", "5")
    assert re.search(r"guidance 2.0\) against the test images: FD [\d.]+.*classified as their labels [\d.]+", out)

    vae_dir, _ = new_run("vae", '{"latent_dim": 4}')
    _, out = new_run("latent-ddpm", f'{{"autoencoder": "{vae_dir}", "steps": 20, "hidden": [16]}}')
    assert "no likelihood (latent diffusion decodes deterministically)" in out and "FD" in out


def test_cli_diffusion_flags_are_checked(tmp_path, capsys) -> None:
    logdir = tmp_path / "runs"
    argv = ["train", "ddpm", "--data", "digits-binary", "--epochs", "1", "--logdir", str(logdir), "--model-kwargs",
            '{"steps": 10, "channels": 8}']  # fmt: skip
    assert train.main(argv) == 0
    (run_dir,) = logdir.iterdir()
    capsys.readouterr()
    for flags, message in [(["--guidance", "1"], "guidance needs a class-conditional model (ddpm-cond)"),
                           (["--temperature", "0.5"], "--temperature: DDPM does not take it (the flows take one)"),
                           (["--steps", "5"], "the ancestral sampler runs all 10 steps")]:  # fmt: skip
        assert train.main(["sample", str(run_dir), "--out", str(tmp_path / "s.png"), *flags]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err


def test_cli_ddpm_on_points_reports_the_bound_and_the_modes(tmp_path, capsys) -> None:
    argv = ["train", "ddpm", "--data", "toy:eight_gaussians", "--epochs", "1", "--logdir", str(tmp_path / "runs"),
            "--model-kwargs", '{"steps": 20, "hidden": [16]}']  # fmt: skip
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"test NLL <= [\d.]+ nats, [\d.]+ bits/dim \(variational bound, all 20 terms", out)
    assert re.search(r"modes covered \d/8, high-quality fraction [\d.]+", out)


def test_cli_help_states_the_diffusion_defaults() -> None:
    from generative.diffusion import DDPM

    assert DDPM.training_defaults == {"epochs": train.DIFFUSION_EPOCHS, "patience": train.DIFFUSION_EPOCHS}
    help_text = train.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert f"diffusion: {train.DIFFUSION_EPOCHS}" in " ".join(help_text.split())


@pytest.mark.parametrize("conditional", [False, True])
def test_shipped_digits_ddpms_are_the_documented_runs(conditional: bool) -> None:
    """The shipped models (``load_digits_ddpm``, what ``tests/test_diffusion_learning.py`` checks) are run
    directories of the recipe their docstrings state, with every epoch of their training in the TensorBoard
    events beside the weights, and load through the CLI's run loader as the right class in eval mode."""
    from generative.diffusion import ConditionalDDPM, digits_ddpm_dir, load_digits_ddpm
    from mpenv.checkpoint import load_config, load_torch
    from mpenv.logger import read_scalars

    run_dir = digits_ddpm_dir(conditional)
    epochs = 200 if conditional else 300
    config = load_config(run_dir)
    assert config["model"] == ("ddpm-cond" if conditional else "ddpm") and config["model_kwargs"] == {"n_bins": 2}
    settings = ("data", "seed", "epochs", "patience", "batch_size", "learning_rate")
    assert [config[key] for key in settings] == ["digits-binary", 0, epochs, epochs, 64, 1e-3]
    steps, val_loss = read_scalars(run_dir, "loss/val")
    assert list(steps) == list(range(1, epochs + 1))
    extra = load_torch(run_dir)["extra"]
    assert extra["best_epoch"] == int(val_loss.argmin()) and math.isclose(min(extra["val_loss"]), val_loss.min(),
                                                                          rel_tol=1e-6)  # fmt: skip
    model = load_digits_ddpm(conditional)
    assert type(model) is (ConditionalDDPM if conditional else DDPM) and not model.training
    assert sum(p.numel() for p in model.net.parameters()) < 200_000 and (run_dir / "checkpoint.pt").stat().st_size < 2e6
    if conditional:
        assert model.p_uncond == 0.1 and model.num_classes == 10


def test_shipped_diffusion_models_are_the_recipes(benchmark_script) -> None:
    """Every shipped diffusion model is the recipe of ``benchmarks/diffusion_assets.py``: its config (model, kwargs,
    data, seed, epochs, patience, batch size, learning rate, ``made_by``) and its TensorBoard events beside the
    weights. The ControlNet: every epoch in the events, its base the shipped DDPM's folder, the base's weights in
    its checkpoint the shipped DDPM's (the run loader loads every weight, so they are stored again: 1.7 MB in
    all), ``load_digits_controlnet`` and the run loader (from the repository root) load the same model."""
    from pathlib import Path

    from generative.diffusion import load_digits_controlnet, load_digits_ddpm, load_eight_gaussians_ddpm
    from generative.diffusion.pretrained import DIGITS_CONTROLNET_DIR
    from generative.shipped import ASSETS
    from mpenv.checkpoint import load_config, load_torch
    from mpenv.logger import read_scalars

    root = Path(__file__).resolve().parents[1]
    assets = benchmark_script("diffusion_assets")
    for name, recipe in assets.RECIPES.items():
        run_dir = ASSETS / recipe["folder"]
        config, expected = load_config(run_dir), assets.recipe_config(name)
        assert {k: v for k, v in config.items() if k != "torch"} == {k: v for k, v in expected.items() if k != "torch"}
        assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir()), run_dir
    run_dir = assets.ASSETS / assets.RECIPES["controlnet"]["folder"]
    assert run_dir == DIGITS_CONTROLNET_DIR
    assert root / load_config(run_dir)["model_kwargs"]["base"] == ASSETS / "digits_ddpm"
    steps, val_loss = read_scalars(run_dir, "loss/val")
    state = load_torch(run_dir)
    assert list(steps) == list(range(1, 41)) and state["step"] == 40
    assert state["extra"]["best_epoch"] == int(val_loss.argmin())
    model = load_digits_controlnet()
    assert type(model) is ControlNet and model.control == "mask" and not model.training and not model.base.training
    base = load_digits_ddpm().state_dict()
    assert all(torch.equal(model.base.state_dict()[k], v) for k, v in base.items())
    assert (run_dir / "checkpoint.pt").stat().st_size < 2e6
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        loaded, _ = train.load_run(str(run_dir), torch.device("cpu"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    toy = load_eight_gaussians_ddpm()  # the 2D model: both phases' epochs logged, the cosine schedule
    assert type(toy) is DDPM and toy.input_shape == (2,) and toy.schedule.kind == "cosine"
    steps, _ = read_scalars(assets.ASSETS / assets.RECIPES["eight-gaussians"]["folder"], "loss/val")
    assert list(steps) == list(range(1, 301))
