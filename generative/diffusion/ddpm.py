"""Denoising diffusion probabilistic models (Ho et al. 2020): learn to undo the forward process of
``schedule.py`` by predicting the noise.

    L_simple = E_{t ~ U{1..T}, x_0, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

(the course's simple loss: the ELBO's per-step KL terms with their weights dropped). The network can instead
predict ``x_0`` or ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0`` (``prediction=``); every option is
turned into ``eps`` for the samplers (``sampling.py``: the ancestral loop, DDIM) and the bound (``elbo.py``).

The denoiser: for points ``(D,)`` an MLP on ``[x_t, embedding(t)]`` with a sinusoidal embedding of the step
(Vaswani et al.'s, as DDPM uses); for images ``(C, H, W)`` the U-Net of ``unet.py``. Images in [0, 1] are
diffused in [-1, 1]; with ``n_bins`` (the data's grey levels, which ``mpenv-gen`` sets) the bound is on the
discrete NLL and samples are rounded to the levels.

    model = DDPM((2,)); fit(model, train, val); x = model.sample(1000)
    x_fast = model.sample(1000, steps=50, sampler="ddim")
    model = DDPM((1, 8, 8), n_bins=17); model.log_prob(x)    # minus the variational bound, nats
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.common import check_input, event_size
from generative.diffusion.elbo import Bound, variational_bound
from generative.diffusion.sampling import SAMPLERS, reverse_process
from generative.diffusion.schedule import NoiseSchedule
from generative.diffusion.unet import UNet, sinusoidal_embedding
from mpenv.networks import mlp, polyak_update

__all__ = ["DDPM", "PREDICTIONS", "PointDenoiser"]

PREDICTIONS = ("eps", "x0", "v")


class PointDenoiser(nn.Module):
    """``[x_t, embedding(t) (+ label embedding)] -> MLP -> [N, D]``."""

    def __init__(self, dim: int, hidden: Sequence[int], time_dim: int, num_classes: int | None = None) -> None:
        super().__init__()
        self.time_dim, self.num_classes = time_dim, num_classes
        self.net = mlp(dim + time_dim, hidden, dim, activation=nn.SiLU)
        self.label = nn.Embedding(num_classes + 1, time_dim) if num_classes else None

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = sinusoidal_embedding(t, self.time_dim).to(x)
        if self.label is not None:
            if y is None:
                raise ValueError("this denoiser is class-conditional: pass labels y (num_classes for none)")
            emb = emb + self.label(y)
        return self.net(torch.cat([x, emb], dim=1))


class DDPM(nn.Module):
    """A diffusion model of points ``(D,)`` or images ``(C, H, W)`` in [0, 1].

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)`` with ``H == W``.
        steps: ``T``.
        schedule: ``"linear"``, ``"cosine"`` or ``"quadratic"`` (``schedule.py``).
        prediction: what the network outputs: ``"eps"``, ``"x0"`` or ``"v"``.
        variance: ``sigma_t^2`` of the reverse steps: ``"beta"`` (the course's) or ``"posterior"``.
        n_bins: grey levels of discrete images (the bound's decoder, the samples' rounding); ``None``: continuous.
        hidden, time_dim: the point MLP's widths and step embedding.
        channels, mults, blocks, dropout: the image U-Net's (``unet.py``).
        num_classes: class-conditional with labels ``0..num_classes - 1`` (``conditional.py``); ``None``: not.
        ema_decay: the network used in eval mode (sampling, the bound, validation) is an exponential moving
            average of the trained one's weights with this decay, updated after every optimizer step (what
            diffusion models sample with: the raw weights' samples are noisier); ``None``: the weights themselves.
    """

    conditional = False
    diffusion = True
    discrete_decoder = True  # mpenv-gen sets n_bins to the data's grey levels
    training_defaults = {"epochs": 400, "patience": 400}
    """``mpenv-gen``'s: diffusion trains long, and its validation loss (the simple loss at random steps and noise)
    is too noisy to stop on: by default no early stop within the 400 epochs (the best epoch's weights are kept)."""

    def __init__(self, input_shape: Sequence[int], steps: int = 1000, schedule: str = "linear", prediction: str = "eps",
                 variance: str = "beta", n_bins: int | None = None, hidden: Sequence[int] = (128, 128, 128),
                 time_dim: int = 64, channels: int = 16, mults: Sequence[int] | None = None, blocks: int = 1,
                 dropout: float = 0.0, num_classes: int | None = None,
                 ema_decay: float | None = 0.999) -> None:  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        name = type(self).__name__
        square = len(self.input_shape) == 3 and self.input_shape[1] == self.input_shape[2]
        if len(self.input_shape) != 1 and not square:
            raise ValueError(f"{name}: input_shape must be points (D,) or square images (C, H, H), got "
                             f"{self.input_shape}")  # fmt: skip
        if prediction not in PREDICTIONS:
            raise ValueError(f"{name}: prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        if variance not in ("beta", "posterior"):
            raise ValueError(f"{name}: variance must be 'beta' or 'posterior', got {variance!r}")
        if n_bins is not None and (len(self.input_shape) != 3 or n_bins < 2):
            raise ValueError(f"{name}: n_bins (>= 2) is for images, got {n_bins} for input_shape {self.input_shape}")
        self.schedule, self.prediction, self.variance = NoiseSchedule(schedule, steps), prediction, variance
        self.n_bins, self.num_classes = n_bins, num_classes
        if len(self.input_shape) == 1:
            self.net: nn.Module = PointDenoiser(self.input_shape[0], hidden, time_dim, num_classes)
        else:
            c, size, _ = self.input_shape
            self.net = UNet(c, size, channels, mults, blocks, num_classes, dropout)
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"{name}: ema_decay must lie in (0, 1) or be None, got {ema_decay}")
        self.ema_decay = ema_decay
        self.ema = None if ema_decay is None else copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def after_step(self) -> None:
        """``theta_ema <- decay theta_ema + (1 - decay) theta`` (``generative.fit`` calls it after each step)."""
        if self.ema is not None:
            polyak_update(self.ema, self.net, 1 - self.ema_decay)

    @property
    def denoiser(self) -> nn.Module:
        """The network in use: the trained one in train mode, its average in eval mode."""
        return self.net if self.training or self.ema is None else self.ema

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def clip(self) -> float | None:
        """Images lie in [-1, 1] in the diffused space, so the samplers clip their ``x_0`` estimate there (as Ho et
        al.'s code and diffusers do: DDIM-50's FD on binarized digits 28.7 -> 24.1, ancestral 32.3 -> 31.1)."""
        return 1.0 if self.is_image else None

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data -> the diffused space: images [0, 1] -> [-1, 1]; points unchanged."""
        return 2 * x - 1 if self.is_image else x

    def to_data_space(self, x: Tensor) -> Tensor:
        """The inverse, clipped to [0, 1] and rounded to the ``n_bins`` levels for images."""
        if not self.is_image:
            return x
        x = ((x + 1) / 2).clamp(0, 1)
        return x if self.n_bins is None else torch.round(x * (self.n_bins - 1)) / (self.n_bins - 1)

    def check_labels(self, y: Tensor | None, n: int) -> Tensor | None:
        if self.num_classes is None:
            if y is not None:
                raise ValueError(f"{type(self).__name__} is unconditional: it takes no labels")
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__} is class-conditional: pass labels y")
        y = torch.as_tensor(y, device=self._anchor.device)
        if y.shape != (n,) or y.dtype.is_floating_point or (y < 0).any() or (y >= self.num_classes).any():
            raise ValueError(f"{type(self).__name__}: labels must be {n} integers in 0..{self.num_classes - 1}, got "
                             f"shape {list(y.shape)} {y.dtype}")  # fmt: skip
        return y.long()

    def check_data(self, x: Tensor) -> Tensor:
        x = check_input(x, self.input_shape, model=type(self).__name__)
        valid = ((x >= 0) & (x <= 1)).all() if self.is_image else torch.isfinite(x).all()  # one pass: NaN fails both
        if not valid:
            if not torch.isfinite(x).all():
                raise ValueError(f"{type(self).__name__}: the input contains NaN or infinite values")
            raise ValueError(f"{type(self).__name__}: images must lie in [0, 1], got {x.min().item():.3g}.."
                             f"{x.max().item():.3g}")  # fmt: skip
        return self.to_model_space(x.to(self._anchor))

    def network(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The raw output (``eps``, ``x_0`` or ``v`` by ``prediction``) for steps ``t`` ``[N]``."""
        return self.denoiser(xt, t, y) if self.num_classes is not None else self.denoiser(xt, t)

    def eps(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The predicted noise, whatever the network predicts."""
        return self.eps_from_output(xt, t, self.network(xt, t, y))

    def eps_from_output(self, xt: Tensor, t: Tensor, out: Tensor) -> Tensor:
        if self.prediction == "eps":
            return out
        if self.prediction == "x0":
            return self.schedule.eps_from_x0(xt, t, out)
        ab = self.schedule.at(self.schedule.alphas_cumprod, t, xt)  # v = sqrt(ab) eps - sqrt(1 - ab) x0
        return ab.sqrt() * out + (1 - ab).sqrt() * xt

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        ab = self.schedule.at(self.schedule.alphas_cumprod, t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def simple_loss(self, x0: Tensor, y: Tensor | None = None) -> Tensor:
        """``L_simple`` on data already in the model's space, at a uniformly drawn step per example."""
        t = torch.randint(1, self.schedule.steps + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        return (self.network(self.schedule.q_sample(x0, t, noise), t, y) - self.target(x0, noise, t)).square().mean()

    def loss(self, x: Tensor) -> Tensor:
        """``L_simple``: the mean squared error of the prediction at a uniformly drawn step per example."""
        return self.simple_loss(self.check_data(x))

    def bound(self, x: Tensor, y: Tensor | None = None, steps: int | None = None, seed: int | None = None) -> Bound:
        """The variational bound's terms in nats per example (``elbo.py``); ``steps``: an unbiased estimate from
        that many of the ``T - 1`` middle terms; ``seed`` fixes its noise."""
        x0 = self.check_data(x)
        y = self.check_labels(y, len(x0))
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        was_training = self.training
        self.eval()
        bound = variational_bound(self.sampling_eps(y, 0.0), self.schedule, x0, self.variance, self.n_bins, steps,
                                  generator)  # fmt: skip
        self.train(was_training)
        if self.is_image and self.n_bins is None:  # a density in [-1, 1]: back to [0, 1] units
            shift = event_size(self.input_shape) * math.log(2)
            bound = Bound(bound.total - shift, bound.prior, bound.steps, bound.decoder - shift)
        return bound

    epoch_nll_kwargs = {"steps": 20, "seed": 0}
    """What ``mpenv-gen`` passes to ``log_prob`` for the per-epoch validation curve: the full bound costs ``T``
    network passes, so the curve is a seeded 20-step estimate; ``eval`` computes every term."""

    def log_prob(self, x: Tensor, steps: int | None = None, seed: int | None = 0) -> Tensor:
        """Minus the variational bound, a lower bound on ``log p(x)`` in nats (of the discrete pixels with
        ``n_bins``); every term by default, seeded."""
        return -self.bound(x, None, steps, seed).total

    def sampling_eps(self, y: Tensor | None, guidance: float):
        """The noise predictor the samplers call; the conditional model adds guidance (``conditional.py``)."""
        if guidance:
            raise ValueError(f"{type(self).__name__} is unconditional: classifier-free guidance needs a "
                             "class-conditional model (ddpm-cond)")  # fmt: skip
        return lambda xt, t: self.eps(xt, t, y)

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, sampler: str = "ddpm", eta: float = 0.0,
               variance: str | None = None, guidance: float = 0.0, trajectory: list[Tensor] | None = None,
               y: Tensor | None = None) -> Tensor:  # fmt: skip
        """``n`` samples in data space: the ancestral loop over all ``T`` steps (``sampler="ddpm"``, ``variance``
        ``"beta"`` or ``"posterior"``, the model's by default) or DDIM over ``steps`` of them (``sampler="ddim"``,
        ``eta``). ``trajectory`` collects ``x_t`` (model space) after every step."""
        if n < 1:
            raise ValueError(f"{type(self).__name__}: n must be at least 1, got {n}")
        if sampler not in SAMPLERS:  # before the labels are checked
            raise ValueError(f"unknown sampler {sampler!r}; choose ddpm or ddim")
        eps = self.sampling_eps(self.check_labels(y, n), guidance)
        was_training = self.training
        self.eval()
        x_T = torch.randn(n, *self.input_shape, device=self._anchor.device)
        x = reverse_process(eps, self.schedule, x_T, sampler, steps, eta, variance or self.variance, trajectory,
                            self.clip)  # fmt: skip
        self.train(was_training)
        return self.to_data_space(x)
