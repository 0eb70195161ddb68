"""Diffusion models: a fixed forward process that turns data into noise, and a learned reverse process.

| piece | file | what |
| --- | --- | --- |
| NoiseSchedule | ``schedule.py`` | ``q(x_t | x_0)``, the posterior; linear, cosine, quadratic; log-SNR time |
| ddpm_sample, ddim_sample | ``sampling.py`` | the ancestral loop (``sigma_t^2 = beta_t``) and DDIM |
| variational_bound | ``elbo.py`` | ``L_T + sum L_{t-1} + L_0`` in nats with a discrete decoder (likelihood table) |
| UNet | ``unet.py`` | the time- (and class-) conditioned noise predictor for images |
| DDPM | ``ddpm.py`` | epsilon (or ``x_0``, ``v``) prediction with the simple loss; points and images |
| ConditionalDDPM | ``conditional.py`` | class labels with label dropout; classifier-free guidance |
| ControlNet | ``controlnet.py`` | a frozen base steered by an edge map or mask through zero-initialized convolutions |
| LatentDDPM | ``latent.py`` | diffusion in a trained autoencoder's code space, decoded at the end |
| inpaint | ``inpaint.py`` | fill unknown pixels by conditioning the reverse process (RePaint resampling) |
| load_digits_ddpm | ``pretrained.py`` | the shipped DDPM and class-conditional DDPM of binarized digits |
| load_digits_controlnet | ``pretrained.py`` | the shipped coarse-mask ControlNet on that DDPM |
| load_eight_gaussians_ddpm | ``pretrained.py`` | the shipped 2D DDPM of the eight Gaussians |

Every model: ``Model(input_shape, ...)``, ``loss(x)`` (``loss(x, y)`` conditional), ``sample(n, ...,
steps=None, sampler="ddpm"|"ddim", eta=0)``, ``log_prob(x)`` minus the variational bound (not the latent model);
trained by ``generative.fit.fit`` or ``mpenv-gen train ddpm|ddpm-cond|controlnet|latent-ddpm``.
"""

from generative.diffusion.conditional import ConditionalDDPM
from generative.diffusion.controlnet import CONTROLS, ControlNet, coarse_mask, edge_map, mean_iou
from generative.diffusion.ddpm import DDPM, PREDICTIONS
from generative.diffusion.elbo import Bound, discretized_gaussian_log_prob, normal_kl, variational_bound
from generative.diffusion.inpaint import inpaint
from generative.diffusion.latent import LatentDDPM
from generative.diffusion.pretrained import (
    digits_ddpm_dir,
    load_digits_controlnet,
    load_digits_ddpm,
    load_eight_gaussians_ddpm,
)
from generative.diffusion.sampling import SAMPLERS, ddim_sample, ddim_timesteps, ddpm_sample, reverse_process
from generative.diffusion.schedule import SCHEDULES, ContinuousSchedule, NoiseSchedule
from generative.diffusion.unet import UNet, sinusoidal_embedding

__all__ = ["CONTROLS", "DDPM", "PREDICTIONS", "SAMPLERS", "SCHEDULES", "Bound", "ConditionalDDPM",
           "ContinuousSchedule", "ControlNet", "LatentDDPM", "NoiseSchedule", "UNet", "coarse_mask", "ddim_sample",
           "ddim_timesteps", "ddpm_sample", "digits_ddpm_dir", "discretized_gaussian_log_prob", "edge_map", "inpaint",
           "load_digits_controlnet", "load_digits_ddpm", "load_eight_gaussians_ddpm", "mean_iou", "normal_kl",
           "reverse_process", "sinusoidal_embedding", "variational_bound"]  # fmt: skip
