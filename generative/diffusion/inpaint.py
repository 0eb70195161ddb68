"""Inpainting with an unconditional diffusion model: condition the reverse process on known pixels.

At every reverse step the unknown pixels take the model's step and the known ones are replaced by a fresh draw
of the forward process at the same noise level,

    x_{t-1} = m * x_{t-1}^known + (1 - m) * x_{t-1}^unknown,
        x_{t-1}^known ~ q(x_{t-1} | x_0^known),   x_{t-1}^unknown ~ p_theta(x_{t-1} | x_t)

(``m``: 1 where a pixel is known). Replacement alone harmonizes poorly, because the unknown part only ever sees
the known part through noise; RePaint (Lugmayr et al. 2022) resamples: after each step it diffuses ``x_{t-1}``
back to ``x_t`` with ``q(x_t | x_{t-1})`` and repeats the step, ``resample`` times in all, so the two parts can
agree. No training is involved: any trained ``DDPM`` (or ``ConditionalDDPM`` with labels) inpaints.

``steps`` runs the loop on that many of the ``T`` steps, evenly spaced, with the schedule respaced to them
(``NoiseSchedule.respaced``: the same ``alpha_bar`` at the kept steps, each step's ``beta`` spanning the gap), as
RePaint itself does with 250 of 1000 steps: the network calls drop by ``T / steps``.

    filled = inpaint(model, images, mask, resample=5)
    filled = inpaint(model, images, mask, resample=4, steps=250)
"""

from __future__ import annotations

import torch
from torch import Tensor

from generative.diffusion.ddpm import DDPM
from generative.diffusion.sampling import ddim_timesteps, reverse_mean

__all__ = ["inpaint"]


@torch.no_grad()
def inpaint(model: DDPM, known: Tensor, mask: Tensor, resample: int = 1, y: Tensor | None = None,
            steps: int | None = None) -> Tensor:  # fmt: skip
    """Fill the pixels where ``mask`` is 0 for each example of ``known`` (data space, ``[N, *input_shape]``; its
    values under ``mask == 0`` are ignored), on all the model's steps or ``steps`` of them. Returns data-space
    samples whose known pixels equal ``known``'s."""
    if resample < 1:
        raise ValueError(f"inpaint: resample must be at least 1, got {resample}")
    if steps is not None and not 1 <= steps <= model.schedule.steps:
        raise ValueError(f"inpaint: steps must lie in 1..{model.schedule.steps}, got {steps}")
    if mask.shape != known.shape or not torch.isin(mask, torch.tensor([0.0, 1.0], device=mask.device)).all():
        raise ValueError(f"inpaint: mask must be a {{0, 1}} tensor of the images' shape {list(known.shape)}, got "
                         f"{list(mask.shape)}")  # fmt: skip
    x0 = model.check_data(known)
    m = mask.to(x0)
    eps = model.sampling_eps(model.check_labels(y, len(x0)), 0.0)
    schedule, was_training = model.schedule, model.training
    if steps is not None:
        schedule = schedule.respaced(ddim_timesteps(schedule.steps, steps))
    model.eval()
    sigmas2 = schedule.betas if model.variance == "beta" else schedule.posterior_variance
    x = torch.randn_like(x0)
    for step in range(schedule.steps, 0, -1):
        t = torch.full((len(x0),), step, dtype=torch.long, device=x0.device)
        network_t = torch.full_like(t, int(schedule.timesteps[step]))
        for round_ in range(resample):
            unknown = reverse_mean(schedule, x, t, eps(x, network_t), model.clip)
            if step > 1:
                unknown = unknown + schedule.at(sigmas2, t, x).sqrt() * torch.randn_like(x)
            previous = m * schedule.q_sample(x0, t - 1) + (1 - m) * unknown
            if round_ < resample - 1:  # back to x_t by one forward step, and take the step again
                beta = schedule.at(schedule.betas, t, x)
                x = (1 - beta).sqrt() * previous + beta.sqrt() * torch.randn_like(x)
        x = previous
    model.train(was_training)
    out = model.to_data_space(x)
    return torch.where(mask.bool().to(out.device), known.to(out), out)  # exactly the given pixels
