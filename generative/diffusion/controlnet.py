"""ControlNet (Zhang et al. 2023): steer a trained, frozen diffusion model with a control image.

A trainable copy of the base U-Net's encoder sees the noisy image and the control image (through a small
convolutional "hint" network added after the stem); each of its outputs (every skip and the middle features)
enters the frozen base through its own zero-initialized 1x1 convolution, added to the base's matching skip:

    eps(x_t, t, c) = decoder_base( skips_base(x_t, t) + Z(skips_copy(x_t, t, hint(c))) )

The zero convolutions make the controlled model equal the base exactly at initialization (the added residuals
are zeros), so training starts from the base's behaviour and only learns how the control should change it; the
loss is the base's simple loss with the control computed from the training image itself.

Controls, functions of the image so that "does the sample follow the control" has an exact answer:
``"edges"`` (where the Sobel gradient magnitude exceeds half its largest possible value) and ``"mask"`` (a coarse
silhouette: 2x2 blocks whose mean exceeds 1/4, at full size).

    model = ControlNet((1, 8, 8), base="runs/<ddpm run>", control="edges"); fit(model, train, val)
    x = model.sample(16, control=model.control_of(test[:16]))
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.diffusion.ddpm import DDPM
from generative.diffusion.elbo import Bound, variational_bound
from generative.diffusion.sampling import reverse_process
from generative.diffusion.unet import zero

__all__ = ["CONTROLS", "ControlNet", "coarse_mask", "edge_map", "mean_iou"]

CONTROLS = ("edges", "mask")
_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def edge_map(x: Tensor) -> Tensor:
    """``[N, 1, H, W]`` in [0, 1] -> {0, 1}: Sobel gradient magnitude above 2 (half the largest, 4, of a
    0-to-1 step edge's)."""
    kernel = torch.stack([_SOBEL, _SOBEL.T])[:, None].to(x)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    return (g.square().sum(1, keepdim=True).sqrt() > 2.0).to(x.dtype)


def coarse_mask(x: Tensor) -> Tensor:
    """``[N, 1, H, W]`` -> {0, 1}: 2x2 blocks whose mean exceeds 1/4, upsampled back to full size."""
    return F.interpolate((F.avg_pool2d(x, 2) > 0.25).to(x.dtype), scale_factor=2, mode="nearest")


def mean_iou(a: Tensor, b: Tensor) -> float:
    """The mean intersection over union of {0, 1} maps ``[N, ...]`` (1: identical; two empty maps count 0)."""
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    return float(((a & b).sum(1) / (a | b).sum(1).clamp(min=1)).mean())


class ControlNet(nn.Module):
    """A frozen image ``DDPM`` (``base``: the model, or a ``mpenv-gen`` run directory of one) with a trainable
    encoder copy fed by a control image.

    Args:
        input_shape: the base's, ``(1, H, W)``.
        base: a trained unconditional image ``DDPM`` or its run directory.
        control: ``"edges"`` or ``"mask"``, what ``control_of(x)`` computes.
        hint_channels: width of the hint network.
    """

    diffusion = True
    training_defaults = DDPM.training_defaults

    def __init__(self, input_shape: Sequence[int], base: DDPM | str, control: str = "edges",
                 hint_channels: int = 16) -> None:  # fmt: skip
        super().__init__()
        if isinstance(base, str):
            from generative.train import load_run  # a run directory: the CLI's loader checks config and weights

            base = load_run(base, torch.device("cpu"))[0]
        if not isinstance(base, DDPM) or not base.is_image or base.num_classes is not None:
            raise ValueError(f"ControlNet needs an unconditional image DDPM as its base, got {type(base).__name__}")
        if tuple(input_shape) != base.input_shape or base.input_shape[0] != 1:
            raise ValueError(f"ControlNet: input_shape {tuple(input_shape)} must be the base's one-channel "
                             f"{base.input_shape}")  # fmt: skip
        if control not in CONTROLS:
            raise ValueError(f"unknown control {control!r}; choose one of {', '.join(CONTROLS)}")
        self.input_shape, self.control = base.input_shape, control
        self.base = base.requires_grad_(False).eval()
        self.encoder = copy.deepcopy(base.denoiser).requires_grad_(True)
        self.encoder.up, self.encoder.out = nn.ModuleList(), nn.Identity()  # only the encoder half is copied
        width = base.net.channels
        self.hint = nn.Sequential(nn.Conv2d(1, hint_channels, 3, padding=1), nn.SiLU(),
                                  zero(nn.Conv2d(hint_channels, width, 3, padding=1)))  # fmt: skip
        channels = [*base.net.skip_channels, base.net.mid_channels]
        self.zero_convs = nn.ModuleList(zero(nn.Conv2d(c, c, 1)) for c in channels)

    def train(self, mode: bool = True) -> ControlNet:
        super().train(mode)
        self.base.eval()  # frozen: its dropout stays off
        return self

    @property
    def schedule(self):
        return self.base.schedule

    def control_of(self, x: Tensor) -> Tensor:
        """The control image of data ``x`` in [0, 1]."""
        return edge_map(x) if self.control == "edges" else coarse_mask(x)

    def agreement(self, samples: Tensor, control: Tensor) -> float:
        """How well samples follow their controls: the mean IoU of the samples' own control maps with them."""
        return mean_iou(self.control_of(samples.to(control)), control)

    def check_control(self, control: Tensor, n: int) -> Tensor:
        expected = (n, *self.input_shape)
        if tuple(control.shape) != expected or not torch.isin(control, torch.tensor([0.0, 1.0])).all():
            raise ValueError(f"ControlNet: the control must be a {{0, 1}} image of shape {list(expected)}, got "
                             f"{list(control.shape)}")  # fmt: skip
        return control.to(self.base._anchor)

    def residuals(self, xt: Tensor, t: Tensor, control: Tensor) -> list[Tensor]:
        """The copy's skips and middle features through the zero convolutions."""
        h, skips = self.encoder.encode(xt, self.encoder.embed(t), hint=self.hint(2 * control - 1))
        return [z(s) for z, s in zip(self.zero_convs, [*skips, h], strict=True)]

    def eps(self, xt: Tensor, t: Tensor, control: Tensor) -> Tensor:
        out = self.base.denoiser(xt, t, residuals=self.residuals(xt, t, control))
        return self.base.eps_from_output(xt, t, out)

    def loss(self, x: Tensor) -> Tensor:
        """The base's simple loss, with the control computed from ``x``; only the copy, hint and zero
        convolutions learn."""
        x0 = self.base.check_data(x)
        control = self.control_of(x.to(x0))
        t = torch.randint(1, self.schedule.steps + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, noise)
        out = self.base.denoiser(xt, t, residuals=self.residuals(xt, t, control))
        return (out - self.base.target(x0, noise, t)).square().mean()

    epoch_nll_kwargs = DDPM.epoch_nll_kwargs

    def bound(self, x: Tensor, steps: int | None = None, seed: int | None = None) -> Bound:
        """The variational bound of ``p(x | control_of(x))``, nats per example."""
        x0 = self.base.check_data(x)
        control = self.control_of(x.to(x0))
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return variational_bound(lambda xt, t: self.eps(xt, t, control), self.schedule, x0, self.base.variance,
                                 self.base.n_bins, steps, generator)  # fmt: skip

    def log_prob(self, x: Tensor, steps: int | None = None, seed: int | None = 0) -> Tensor:
        """Minus the bound of ``log p(x | c)`` with ``c`` the control of ``x`` itself (not comparable with the
        unconditional rows of the likelihood table)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = -self.bound(x, steps, seed).total
        self.train(was_training)
        return out

    @torch.no_grad()
    def sample(self, n: int, control: Tensor, steps: int | None = None, sampler: str = "ddpm",
               eta: float = 0.0) -> Tensor:  # fmt: skip
        """``n`` samples following ``control`` ``[n, 1, H, W]`` (the base's samplers and variance)."""
        control = self.check_control(control, n)
        was_training = self.training
        self.eval()
        x_T = torch.randn(n, *self.input_shape, device=control.device)
        x = reverse_process(lambda xt, t: self.eps(xt, t, control), self.schedule, x_T, sampler, steps, eta,
                            self.base.variance, clip=self.base.clip)  # fmt: skip
        self.train(was_training)
        return self.base.to_data_space(x)
