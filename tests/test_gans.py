"""GANs (generative.gans): the game's theory by quadrature (``D*``, ``V(G, D*) = -log 4 + 2 JSD``), the losses'
gradients at a strong discriminator, the gradient penalty against a linear critic, the unrolled loss's gradient
against finite differences, the networks' shapes, EMA, bad input, the adversarial loop and ``mpenv-gen``, and
learning the eight Gaussians (modes covered) and the digits (Fréchet distance)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch.func import functional_call

from generative import data, metrics, train
from generative.gans import (
    DCGAN,
    DIGITS_GANS,
    GAN,
    WGANGP,
    DCGANDiscriminator,
    DCGANGenerator,
    StyleGAN,
    UnrolledGAN,
    digits_gan_dir,
    discriminator_loss,
    fit_gan,
    generator_loss,
    gradient_penalty,
    inpaint,
    invert,
    load_digits_gan,
    mlp_discriminator,
    modulated_conv2d,
    optimal_discriminator,
    train_encoder,
    unrolled_generator_loss,
)
from generative.gans.styleflow import fit_styleflow


def normal_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


# ------------------------------------------------------------------------------------------------ the theory


def test_trained_discriminator_is_the_optimal_one_and_the_value_is_the_jsd() -> None:
    """Two fixed 1D densities: a discriminator trained on their samples with the minimax loss matches
    ``D* = p_d / (p_d + p_m)`` where the data lie, and by quadrature ``V(G, D*) = -log 4 + 2 JSD(p_d || p_m)``
    (the JSD computed from its definition through the mixture ``M``), with the trained one's value just below."""
    torch.manual_seed(0)
    x = torch.linspace(-8, 8, 16001, dtype=torch.float64)
    dx = float(x[1] - x[0])
    p_d, p_m = normal_pdf(x, 0.0, 1.0), normal_pdf(x, 1.5, 0.7)
    d_star = optimal_discriminator(p_d, p_m)

    def value(d: torch.Tensor) -> float:  # V(G, D) = E_pd log D + E_pm log(1 - D), by the midpoint rule
        return float(((p_d * d.clamp_min(1e-300).log() + p_m * (1 - d).clamp_min(1e-300).log()) * dx).sum())

    mixture = 0.5 * (p_d + p_m)
    kl = lambda p, q: float((p * (p.clamp_min(1e-300) / q.clamp_min(1e-300)).log() * dx).sum())  # noqa: E731
    jsd = 0.5 * kl(p_d, mixture) + 0.5 * kl(p_m, mixture)
    assert value(d_star) == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-9)
    assert 0.1 < jsd < math.log(2)  # neither trivial nor disjoint

    discriminator = mlp_discriminator(1, (64, 64)).double()
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=3e-3)
    for _ in range(1500):
        real, fake = torch.randn(512, 1, dtype=torch.float64), 1.5 + 0.7 * torch.randn(512, 1, dtype=torch.float64)
        loss = discriminator_loss("minimax", discriminator(real)[:, 0], discriminator(fake)[:, 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        d_trained = torch.sigmoid(discriminator(x[:, None])[:, 0])
    mass = (p_d + p_m) * dx / 2  # where either density puts its mass
    assert float((mass * (d_trained - d_star).abs()).sum()) < 0.02
    assert float((d_trained - d_star).abs()[mixture > 0.05].max()) < 0.1
    assert value(d_star) - 0.01 < value(d_trained) <= value(d_star)


def test_minimax_and_non_saturating_generators_share_direction_but_not_strength() -> None:
    """Against a confident discriminator (``D(G(z))`` near 0) the minimax generator's gradient vanishes
    (``sigmoid(l)``) and the non-saturating one's does not (``1 - sigmoid(l)``); both push the logit the same way,
    so the game has the same fixed point."""
    logits = torch.tensor([-8.0, -4.0, 0.0, 4.0], requires_grad=True)
    (minimax,) = torch.autograd.grad(generator_loss("minimax", logits) * len(logits), logits)
    (saturating_free,) = torch.autograd.grad(generator_loss("non-saturating", logits) * len(logits), logits)
    expected_minimax, expected_ns = -torch.sigmoid(logits.detach()), -(1 - torch.sigmoid(logits.detach()))
    assert torch.allclose(minimax, expected_minimax) and torch.allclose(saturating_free, expected_ns)
    assert (minimax < 0).all() and (saturating_free < 0).all()  # both raise D(G(z))
    assert abs(float(minimax[0])) < 1e-3 and abs(float(saturating_free[0])) > 0.999  # D(G(z)) = 3e-4
    assert float(minimax[2]) == float(saturating_free[2]) == -0.5


@pytest.mark.parametrize(("kind", "real", "fake", "d_loss", "g_loss"), [
    ("minimax", 0.0, 0.0, 2 * math.log(2), -math.log(2)),
    ("non-saturating", 2.0, -1.0, math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)), math.log1p(math.exp(1))),
    ("wasserstein", 2.0, -1.0, -3.0, 1.0),
    ("hinge", 0.5, -0.25, 0.5 + 0.75, 0.25),
])  # fmt: skip
def test_losses_against_hand_computed_values(kind, real, fake, d_loss, g_loss) -> None:
    r, f = torch.full((3,), real), torch.full((3,), fake)
    assert float(discriminator_loss(kind, r, f)) == pytest.approx(d_loss, rel=1e-6)
    assert float(generator_loss(kind, f)) == pytest.approx(g_loss, rel=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_exact() -> None:
    """``l(x) = w . x`` has gradient ``w`` everywhere: every interpolate's norm is ``|w|``, the penalty
    ``(|w| - 1)^2``, and its gradient in ``w`` is ``2 (|w| - 1) w / |w|``."""
    critic = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, -1.0, 2.0]]))  # |w| = 3
    real, fake = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    penalty, norms = gradient_penalty(critic, real, fake)
    assert torch.allclose(norms, torch.full((5,), 3.0, dtype=torch.float64))
    assert float(penalty.detach()) == pytest.approx(4.0)
    penalty.backward()
    assert torch.allclose(critic.weight.grad, 2 * (3 - 1) * critic.weight.detach() / 3)


def test_unrolled_loss_differentiates_through_the_look_ahead_steps() -> None:
    """The unrolled generator gradient equals finite differences of the unrolled loss (same noise each time),
    and differs from the gradient with the look-ahead weights held fixed (the term the unrolling adds)."""
    torch.manual_seed(0)
    gan = UnrolledGAN((2,), hidden=(16,), unroll_steps=3, unroll_lr=0.5).double()
    real = torch.randn(64, 2, dtype=torch.float64)

    def loss(detach_look_ahead: bool = False) -> torch.Tensor:
        torch.manual_seed(1)
        if not detach_look_ahead:
            return unrolled_generator_loss(gan, real, 64)
        params = {k: v.detach() for k, v in dict(gan.discriminator.named_parameters()).items()}
        for _ in range(gan.unroll_steps):  # the same look-ahead weights, as constants
            fake = gan.generate(gan.noise(64)).detach()
            params = {k: v.requires_grad_(True) for k, v in params.items()}
            d = functional_call(gan.discriminator, params, (torch.cat([real, fake]),)).view(-1)
            grads = torch.autograd.grad(discriminator_loss("non-saturating", d[:64], d[64:]), list(params.values()))
            params = {k: (v - gan.unroll_lr * g).detach() for (k, v), g in zip(params.items(), grads, strict=True)}
        d_fake = functional_call(gan.discriminator, params, (gan.generate(gan.noise(64)),)).view(-1)
        return generator_loss("non-saturating", d_fake)

    weight = gan.generator[0].weight
    (unrolled,) = torch.autograd.grad(loss(), weight)
    (fixed,) = torch.autograd.grad(loss(detach_look_ahead=True), weight)
    assert float(loss().detach()) == pytest.approx(float(loss(detach_look_ahead=True).detach()), abs=1e-12)
    h = 1e-6
    for index in [(0, 0), (3, 1), (7, 0)]:
        values = []
        for shift in (h, -2 * h, h):  # up, down, back
            with torch.no_grad():
                weight[index] += shift
            values.append(float(loss().detach()))
        up, down = values[:2]
        assert (up - down) / (2 * h) == pytest.approx(float(unrolled[index]), rel=1e-5, abs=1e-9)
    assert float((unrolled - fixed).abs().max()) > 1e-3 * float(fixed.abs().max())


# ------------------------------------------------------------------------------------------------ the pieces


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 12)])
def test_dcgan_networks_map_noise_to_images_and_images_to_logits(shape) -> None:
    g, d = DCGANGenerator(shape, latent_dim=16, channels=8), DCGANDiscriminator(shape, channels=8)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, *shape) and ((x > 0) & (x < 1)).all()
    assert d(x).shape == (5,)
    assert not any(isinstance(m, torch.nn.Linear | torch.nn.MaxPool2d | torch.nn.AvgPool2d) for m in g.modules())
    assert not any(isinstance(m, torch.nn.Linear | torch.nn.MaxPool2d | torch.nn.AvgPool2d) for m in d.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())


def test_ema_is_the_moving_average_of_the_generator_weights() -> None:
    torch.manual_seed(0)
    gan = GAN((2,), hidden=(8,), ema_decay=0.9)
    before = [p.clone() for p in gan.generator_ema.parameters()]
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    gan.update_ema()
    for old, ema, current in zip(before, gan.generator_ema.parameters(), gan.generator.parameters(), strict=True):
        assert torch.allclose(ema, 0.9 * old + 0.1 * current)
    torch.manual_seed(3)
    z = gan.noise(4)
    torch.manual_seed(3)
    assert torch.allclose(gan.sample(4), gan.generator_ema(z))  # samples come from the average


def test_mode_coverage_counts_modes_and_good_samples() -> None:
    centres, sigma = data.mixture_modes("eight_gaussians")
    assert metrics.mode_coverage(data.sample("eight_gaussians", 4000, seed=0), centres, sigma)[0] == 8
    collapsed = centres[:3].repeat(100, 1) + 0.01
    covered, good = metrics.mode_coverage(torch.cat([collapsed, torch.full((100, 2), 10.0)]), centres, sigma)
    assert covered == 3 and good == pytest.approx(0.75)
    grid_centres, grid_sigma = data.mixture_modes("grid")
    assert grid_centres.shape == (25, 2) and grid_sigma == 0.05 and data.mixture_modes("rings") is None


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown GAN loss 'least-squares'"):
        GAN((2,), loss="least-squares")
    with pytest.raises(ValueError, match="multiples of 4"):
        DCGAN((1, 10, 10))
    with pytest.raises(ValueError, match="input_shape must be"):
        GAN((2, 3))
    with pytest.raises(ValueError, match="d_steps >= 1"):
        GAN((2,), d_steps=0)
    gan = GAN((2,), hidden=(8,))
    with pytest.raises(ValueError, match=r"GAN: expected.*\[N, 2\]|GAN.*shape"):
        gan.discriminator_loss(torch.zeros(4, 3))


def test_a_nan_discriminator_stops_the_loop_naming_the_step(monkeypatch) -> None:
    torch.manual_seed(0)
    gan = GAN((2,), hidden=(8,))
    calls = {"n": 0}
    discriminate = gan.discriminate

    def sometimes_nan(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = discriminate(x)
        return out * float("nan") if calls["n"] > 18 else out  # 3 calls a step: the 7th step's first

    monkeypatch.setattr(gan, "discriminate", sometimes_nan)
    with pytest.raises(FloatingPointError, match=r"NaN or infinite logits at generator step 7 \(epoch 2\)"):
        fit_gan(gan, data.sample("eight_gaussians", 256), steps=50, batch_size=64)


def test_wgan_gp_gradient_norms_approach_one() -> None:
    """The fresh critic's gradient norm on interpolates is far from 1; the penalty pulls it to 1 and keeps it
    there while the critic trains (every epoch's mean within 0.1 of 1)."""
    torch.manual_seed(0)
    gan = WGANGP((2,), hidden=(64, 64))
    points = data.load("toy:eight_gaussians").train
    initial = float(gradient_penalty(gan.discriminate, points[:512], gan.sample(512))[1].mean())
    history = fit_gan(gan, points, steps=400, batch_size=256, lr=1e-3)
    norms = history.log["gradient_norm"]
    assert abs(initial - 1) > 0.5 and max(abs(n - 1) for n in norms) < 0.1, (initial, norms)


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_trains_samples_evaluates_and_resumes_a_gan(tmp_path, capsys) -> None:
    logdir = tmp_path / "runs"
    argv = ["train", "wgan-gp", "--data", "toy:eight_gaussians", "--epochs", "2", "--batch-size", "512",
            "--logdir", str(logdir), "--model-kwargs", '{"hidden": [16]}', "--sample-every", "1"]  # fmt: skip
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    line = [x for x in out.splitlines() if "no likelihood" in x][0]
    assert re.search(r"modes covered \d/8, high-quality fraction [\d.]+, precision [\d.]+, recall", line)
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    assert train.main(["eval", str(run_dir)]) == 0 and capsys.readouterr().out.strip() == line
    image = tmp_path / "s.png"
    assert train.main(["sample", str(run_dir), "-n", "16", "--out", str(image)]) == 0 and image.is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["learning_rate"] == 2e-4 and config["epochs"] == 2
    assert train.main(["train", "--resume", str(run_dir), "--epochs", "3"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/generator", "loss/discriminator", "gradient_penalty/gradient_norm", "quality/modes_val"} <= scalars
    assert [e.step for e in events.Scalars("loss/generator")] == [1, 2, 3]
    assert "samples" in events.Tags()["images"]


@pytest.mark.parametrize(("model", "source"), [("dcgan", "digits"), ("stylegan", "digits"), ("dcgan", "omniglot28")])
def test_cli_reports_the_frechet_distance_of_image_gans(model, source, tmp_path, capsys) -> None:
    """8x8 images are measured in the digits classifier's features, 28x28 ones in the MNIST classifier's."""
    argv = ["train", model, "--data", source, "--epochs", "1", "--logdir", str(tmp_path / "runs"),
            "--model-kwargs", '{"channels": 8}']  # fmt: skip
    assert train.main(argv) == 0
    assert re.search(rf"{model} on {source}: no likelihood \(a GAN has no log_prob\); sample quality of 1000 samples "
                     r"against the \d+ test examples: FD [\d.]+, KID", capsys.readouterr().out)  # fmt: skip


def test_cli_gan_errors_are_one_line(tmp_path, capsys) -> None:
    argv = ["train", "dcgan", "--data", "toy:eight_gaussians", "--model-kwargs", '{"loss": "wgan"}', "--logdir",
            str(tmp_path / "runs")]  # fmt: skip
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown GAN loss 'wgan'" in err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------ learning


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_gan_covers_the_eight_gaussians(seed: int) -> None:
    """The course's bar: all 8 modes, at least 90% of samples within 3 standard deviations of a mode, after
    3,000 generator steps (non-saturating loss, MLPs 128-128)."""
    torch.manual_seed(seed)
    gan = GAN((2,))
    fit_gan(gan, data.load("toy:eight_gaussians", seed=seed).train, steps=3000, batch_size=256, lr=1e-3, seed=seed)
    covered, good = metrics.mode_coverage(gan.sample(5000), *data.mixture_modes("eight_gaussians"))
    assert covered == 8 and good >= 0.9, (covered, good)


def test_shipped_gans_are_the_documented_runs(benchmark_script) -> None:
    """The GANs in ``generative/assets/`` (what the slow tests below evaluate instead of training them in CI) are
    the recipe of ``benchmarks/gan_assets.py``: its config (model, kwargs, data, seed, epochs, batch size, learning
    rate, ``made_by``), every epoch's generator steps done, the loader's model class; ``made_by`` names the script."""
    assets = benchmark_script("gan_assets")
    assert {recipe["folder"] for recipe in assets.RECIPES.values()} == set(DIGITS_GANS)
    for name, recipe in assets.RECIPES.items():
        run_dir = digits_gan_dir(recipe["folder"])
        config = json.loads((run_dir / "config.json").read_text())
        expected = assets.recipe_config(name)
        assert {k: v for k, v in config.items() if k != "torch"} == {k: v for k, v in expected.items() if k != "torch"}
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        train_split = data.load(config["data"], seed=0)[0]
        steps_per_epoch = -(-len(train_split) // config["batch_size"])
        assert state["step"] == config["epochs"] and state["extra"]["steps"] == config["epochs"] * steps_per_epoch
        assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
        gan = load_digits_gan(recipe["folder"])
        assert type(gan) is (DCGAN if config["model"] == "dcgan" else StyleGAN) and not gan.training


def test_dcgan_learns_the_digits_in_a_few_epochs() -> None:
    """The cheap learning check beside the shipped DCGANs: 6 epochs of ``fit_gan`` on the grey digits take the
    Fréchet distance of 360 samples to the 360 test digits below a quarter of the untrained generator's (measured,
    seeds 0, 1, 2: 256 of 1805, 231 of 1682, 226 of 1675; about 5 CPU s)."""
    train_split, _, test_split = data.load("digits", seed=0)
    classifier = metrics.load_classifier()
    torch.manual_seed(0)
    gan = DCGAN((1, 8, 8))

    def frechet() -> float:
        torch.manual_seed(100)
        with torch.no_grad():
            samples = gan.eval().sample(360)
            return metrics.frechet_distance(classifier.features(test_split), classifier.features(samples))

    untrained = frechet()
    fit_gan(gan, train_split, epochs=6)
    trained = frechet()
    assert trained < untrained / 4, (trained, untrained)


@pytest.mark.slow
def test_dcgan_on_binarized_digits_reaches_the_vae_frechet_distance() -> None:
    """DCGAN (channels 64, 60 epochs, seed 0) against the VAE of the likelihood table (fit to early stopping) and
    independent pixels (each drawn from a random training image), 360 samples each against the 360 test digits
    in the shipped classifier's features. Measured: DCGAN 40.7, VAE 44.5, independent pixels 244."""
    from generative.fit import fit
    from generative.vae import VAE

    train_split, val_split, test_split = data.load("digits-binary", seed=0)
    classifier = metrics.load_classifier()

    def frechet(x: torch.Tensor) -> float:
        with torch.no_grad():
            return metrics.frechet_distance(classifier.features(test_split), classifier.features(x.clamp(0, 1)))

    g = torch.Generator().manual_seed(0)
    picks = torch.randint(len(train_split), (len(test_split), 64), generator=g)
    independent = train_split.flatten(1)[picks, torch.arange(64)].view(-1, 1, 8, 8)
    torch.manual_seed(0)
    vae = VAE((1, 8, 8))
    fit(vae, train_split, val_split)
    torch.manual_seed(0)
    gan = DCGAN((1, 8, 8))
    fit_gan(gan, train_split, epochs=60)
    fd_gan, fd_vae, fd_independent = frechet(gan.sample(360)), frechet(vae.sample(360)), frechet(independent)
    assert fd_gan < 1.25 * fd_vae and fd_gan < fd_independent / 4, (fd_gan, fd_vae, fd_independent)


# ------------------------------------------------------------------------------------------------ inversion


def random_gan() -> GAN:
    """An untrained generator of 16-vectors from 8 latents: an injective-looking map with varied outputs."""
    torch.manual_seed(0)
    return GAN((16,), latent_dim=8, hidden=(32, 32)).eval()


def test_inversion_recovers_a_generated_image_and_restarts_only_help() -> None:
    gan = random_gan()
    with torch.no_grad():
        x = gan.sample(6)
    _, _, one = invert(gan, x, steps=300, restarts=1)
    z, images, best_of_four = invert(gan, x, steps=300, restarts=4)
    assert (best_of_four <= one + 1e-12).all()  # the first start is the same; the best of four is kept
    spread = float(x.var(0).mean())  # what a guess of the mean image would leave: the inversion explains 95%
    assert float(best_of_four.mean()) < 0.05 * spread and float(best_of_four.max()) < 0.1 * spread, best_of_four
    with torch.no_grad():
        assert torch.allclose(gan.generator(z), images, atol=1e-6)


def test_masked_pixels_do_not_influence_the_inversion_and_inpainting_keeps_the_known_ones() -> None:
    gan = random_gan()
    with torch.no_grad():
        x = gan.sample(3)
    mask = torch.ones(1, 16)
    mask[:, 8:] = 0  # the second half is unknown
    scribbled = x.clone()
    scribbled[:, 8:] = torch.rand(3, 8)
    z_a, _, error_a = invert(gan, x, steps=50, mask=mask)
    z_b, _, error_b = invert(gan, scribbled, steps=50, mask=mask)
    assert torch.equal(z_a, z_b) and torch.equal(error_a, error_b)
    filled = inpaint(gan, scribbled, mask, steps=50)
    assert torch.equal(filled[:, :8], scribbled[:, :8])
    assert (filled[:, 8:] - x[:, 8:]).abs().max() < 0.1 < (scribbled[:, 8:] - x[:, 8:]).abs().max()
    with pytest.raises(ValueError, match="mask must be 0/1"):
        invert(gan, x, mask=torch.full((1, 16), 0.5))


def test_an_encoder_start_needs_fewer_steps() -> None:
    gan = random_gan()
    encoder = train_encoder(gan, steps=400)
    torch.manual_seed(5)
    with torch.no_grad():
        x = gan.sample(16)
    _, _, cold = invert(gan, x, steps=20, restarts=1, seed=1)
    _, _, warm = invert(gan, x, steps=20, restarts=1, seed=1, encoder=encoder)
    assert float(warm.mean()) < 0.5 * float(cold.mean()), (float(warm.mean()), float(cold.mean()))


@pytest.mark.slow
def test_dcgan_inverts_and_inpaints_test_digits() -> None:
    """The shipped DCGAN of grey digits (``generative/assets/digits_dcgan``: 60 epochs, seed 0),
    100 test digits: inverted (300 steps, 4 restarts) to a mean
    squared error below 0.01 per pixel (measured 0.0029) and read by the classifier as their own digit >= 90%
    (measured 99%, the originals' 99%); the bottom half hidden and inpainted, the classifier reads >= 60% right
    (measured 71%; the half digits themselves 25%); an encoder start (an MLP trained 1,000 steps on generated
    digits) leaves after 50 steps less than half the error of a random start."""
    _, _, (test_x, test_y) = data.digits(labels=True, seed=0)
    gan = load_digits_gan("digits_dcgan")
    classifier = metrics.load_classifier()
    x, y = test_x[:100], test_y[:100]

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((classifier(images).argmax(1) == y).float().mean())

    _, images, error = invert(gan, x, steps=300, restarts=4)
    assert float(error.mean()) < 0.01 and accuracy(images) >= 0.9
    mask = torch.ones(1, 1, 8, 8)
    mask[..., 4:, :] = 0
    assert accuracy(inpaint(gan, x, mask, steps=300, restarts=4)) >= max(0.6, accuracy(x * mask) + 0.3)
    encoder = train_encoder(gan, steps=1000)
    warm = invert(gan, x, steps=50, restarts=1, encoder=encoder)[2]
    cold = invert(gan, x, steps=50, restarts=1)[2]
    assert float(warm.mean()) < 0.5 * float(cold.mean())


# ------------------------------------------------------------------------------------------------ StyleGAN


def test_modulated_convolution_equals_a_per_sample_convolution_and_ignores_the_style_scale() -> None:
    """The batched implementation against one ``F.conv2d`` per sample with its own modulated, demodulated weight;
    demodulation makes the output independent of the styles' overall scale."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    styles = torch.rand(3, 4, dtype=torch.float64) + 0.5
    expected = []
    for i in range(3):
        w = weight * styles[i][None, :, None, None]
        expected.append(torch.nn.functional.conv2d(x[i : i + 1], w / w.square().sum((1, 2, 3), keepdim=True).sqrt(),
                                                   padding=1))  # fmt: skip
    assert torch.allclose(modulated_conv2d(x, weight, styles), torch.cat(expected), atol=1e-12)
    assert torch.allclose(modulated_conv2d(x, weight, 10 * styles), modulated_conv2d(x, weight, styles), atol=1e-12)
    plain = modulated_conv2d(x, weight, styles, demodulate=False)
    assert torch.allclose(plain[0], torch.nn.functional.conv2d(x[:1], weight * styles[0][None, :, None, None],
                                                               padding=1)[0], atol=1e-12)  # fmt: skip


def test_style_mixing_takes_coarse_and_fine_styles_from_two_latents() -> None:
    torch.manual_seed(0)
    gan = StyleGAN((1, 8, 8), channels=16).eval()
    generator = gan.generator
    for layer in generator.layers:  # noise on: the comparisons below draw it from the same seed
        torch.nn.init.constant_(layer.noise_scale, 0.3)
    z1, z2 = torch.randn(4, 32), torch.randn(4, 32)

    def seeded(fn, *args):
        torch.manual_seed(7)
        with torch.no_grad():
            return fn(*args)

    assert torch.allclose(seeded(generator.mix, z1, z2, 0), seeded(generator, z2))
    assert torch.allclose(seeded(generator.mix, z1, z2, generator.n_styles), seeded(generator, z1))
    mixed = seeded(generator.mix, z1, z2, 3)
    assert not torch.allclose(mixed, seeded(generator, z1)) and not torch.allclose(mixed, seeded(generator, z2))
    assert not torch.allclose(seeded(generator, z1), generator(z1).detach())  # the noise is drawn per call
    assert generator.n_styles == 7 and seeded(generator, z1).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="crossover must be in 0..7"):
        generator.mix(z1, z2, 9)


def test_stylegan_starts_with_samples_that_vary_with_z() -> None:
    """Unit-gain mapping and style maps: at initialization, different latents already give different images."""
    torch.manual_seed(0)
    gan = StyleGAN((1, 8, 8), channels=32)
    w = gan.generator.map(torch.randn(256, 32))
    assert 0.5 < float(w.std(0).mean()) < 2.0
    assert float(gan.sample(64).std(0).mean()) > 0.01


def test_styleflow_edits_keep_u_and_undo_exactly() -> None:
    """An edit keeps ``u = g(w; a)``: editing to the same attributes returns ``w``, and an edit followed by the
    reverse edit returns ``w`` (the flow is exactly invertible for every attribute vector)."""
    torch.manual_seed(0)
    gan = StyleGAN((1, 8, 8), channels=8)
    style = fit_styleflow(gan, metrics.load_classifier(), n=512, epochs=1)
    with torch.no_grad():
        w = gan.generator.map(torch.randn(16, gan.latent_dim))
        a = style.attributes(gan.generator.synthesize(w[:, None].expand(-1, gan.generator.n_styles, -1)),
                             metrics.load_classifier())  # fmt: skip
    assert a.shape == (16, 11) and torch.allclose(a[:, :10].sum(1), torch.ones(16))
    target = a.clone()
    target[:, 10] += 1.0
    assert torch.allclose(style.edit(w, a, a), w, atol=1e-4)
    edited = style.edit(w, a, target)
    assert not torch.allclose(edited, w, atol=1e-3)
    assert torch.allclose(style.edit(edited, target, a), w, atol=1e-4)


@pytest.mark.slow
def test_stylegan_learns_the_digits_and_styleflow_edits_their_thickness() -> None:
    """The shipped StyleGAN (``generative/assets/digits_stylegan``: 30 epochs, seed 0, channels 64),
    sampled from the moving average of its generator's weights
    (``ema_decay=0.99``, as StyleGAN samples from G_ema): Fréchet distance of 360 samples to the 360 test digits
    below 150 (the independent-pixel baseline is 264). Without the average the distance swings from epoch to epoch
    (seed 0: 113, 196, 59 at epochs 25, 30, 35 on one CPU; 78 at 30 on another), so a check at one epoch tested
    luck; with it, seeds 0 and 1 measure 57 and 56 at 30 epochs (82 and 60, falling to 44 and 52 at 40, with the
    earlier grouped-convolution form of the modulated convolution, equal up to rounding). DCGAN reaches 24-27 in
    60: on 8x8 images the style-based generator is the weaker one. StyleFlow fitted on 5,000 of its latents:
    asking 200 samples for strokes one standard deviation thicker makes the measured ink grow in >= 80% of them
    (measured 98.5%), keeps the classifier's digit in >= 70% (measured 89%), and changes a pixel by less than 0.06
    on average (measured 0.026)."""
    _, _, test_split = data.load("digits", seed=0)
    gan = load_digits_gan("digits_stylegan")
    classifier = metrics.load_classifier()
    torch.manual_seed(0)
    with torch.no_grad():
        fd = metrics.frechet_distance(classifier.features(test_split), classifier.features(gan.sample(360)))
    assert fd < 150, fd
    style = fit_styleflow(gan, classifier, n=5000, epochs=20)
    generator = gan.sampling_generator.eval()
    torch.manual_seed(5)
    with torch.no_grad():
        w = generator.map(torch.randn(200, gan.latent_dim))

        def images(latents: torch.Tensor) -> torch.Tensor:
            return generator.synthesize(latents[:, None].expand(-1, generator.n_styles, -1))

        x = images(w)
        a = style.attributes(x, classifier)
        target = a.clone()
        target[:, 10] += 1.0
        x_thick = images(style.edit(w, a, target))
        a_thick = style.attributes(x_thick, classifier)
    assert float((a_thick[:, 10] > a[:, 10]).float().mean()) >= 0.8
    assert float((a_thick[:, :10].argmax(1) == a[:, :10].argmax(1)).float().mean()) >= 0.7
    assert float((x_thick - x).abs().mean()) < 0.06


def test_cli_a_nan_discriminator_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    logdir = tmp_path / "runs"
    judge = GAN.judge
    calls = {"n": 0}

    def nan_in_the_second_epoch(self, real_logits, fake_logits):
        calls["n"] += 1
        if calls["n"] > 5:  # 10,000 points / batch 2048: 5 steps an epoch
            real_logits = real_logits * float("nan")
        return judge(self, real_logits, fake_logits)

    monkeypatch.setattr(GAN, "judge", nan_in_the_second_epoch)
    argv = ["train", "gan", "--data", "toy:eight_gaussians", "--epochs", "3", "--batch-size", "2048", "--logdir",
            str(logdir), "--model-kwargs", '{"hidden": [8]}']  # fmt: skip
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite logits at generator step 6 (epoch 2)" in err and "the last checkpoint in" in err
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    from mpenv.checkpoint import load_torch

    assert load_torch(run_dir)["step"] == 1  # epoch 1's checkpoint, as it was
