"""Diffusion models: a fixed forward process that turns data into noise, and a learned reverse process.

| piece | file | what |
| --- | --- | --- |
| NoiseSchedule | ``schedule.py`` | ``q(x_t | x_0)``, the posterior; linear, cosine, quadratic; log-SNR time |
| ddpm_sample, ddim_sample | ``sampling.py`` | the ancestral loop (``sigma_t^2 = beta_t``) and DDIM |
| variational_bound | ``elbo.py`` | ``L_T + sum L_{t-1} + L_0`` in nats with a discrete decoder (likelihood table) |
| UNet | ``unet.py`` | the time- (and class-) conditioned noise predictor for images |
| DDPM | ``ddpm.py`` | epsilon (or ``x_0``, ``v``) prediction with the simple loss; points and images |
| ConditionalDDPM | ``conditional.py`` | class labels with label dropout; classifier-free guidance |

Every model: ``Model(input_shape, ...)``, ``loss(x)``, ``sample(n, steps=None, sampler="ddpm"|"ddim")``; trained by
``generative.fit.fit``.
"""

from generative.diffusion.conditional import ConditionalDDPM
from generative.diffusion.ddpm import DDPM, PREDICTIONS, SAMPLERS
from generative.diffusion.elbo import Bound, discretized_gaussian_log_prob, normal_kl, variational_bound
from generative.diffusion.sampling import ddim_sample, ddim_timesteps, ddpm_sample
from generative.diffusion.schedule import SCHEDULES, ContinuousSchedule, NoiseSchedule
from generative.diffusion.unet import UNet, sinusoidal_embedding

__all__ = ["DDPM", "PREDICTIONS", "SAMPLERS", "SCHEDULES", "Bound", "ConditionalDDPM", "ContinuousSchedule",
           "NoiseSchedule", "UNet", "ddim_sample", "ddim_timesteps", "ddpm_sample", "discretized_gaussian_log_prob",
           "normal_kl", "sinusoidal_embedding", "variational_bound"]  # fmt: skip
