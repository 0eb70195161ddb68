"""Diffusion models: a fixed forward process that turns data into noise, and a learned reverse process.

| piece | file | what |
| --- | --- | --- |
| NoiseSchedule | ``schedule.py`` | ``q(x_t | x_0)``, the posterior; linear, cosine, quadratic; log-SNR time |
| ddpm_sample, ddim_sample | ``sampling.py`` | the ancestral loop (``sigma_t^2 = beta_t``) and DDIM |
| DDPM | ``ddpm.py`` | epsilon (or ``x_0``, ``v``) prediction with the simple loss; points so far |

Every model: ``Model(input_shape, ...)``, ``loss(x)``, ``sample(n, steps=None, sampler="ddpm"|"ddim")``; trained by
``generative.fit.fit``.
"""

from generative.diffusion.ddpm import DDPM, PREDICTIONS, sinusoidal_embedding
from generative.diffusion.sampling import ddim_sample, ddim_timesteps, ddpm_sample
from generative.diffusion.schedule import SCHEDULES, ContinuousSchedule, NoiseSchedule

__all__ = ["DDPM", "PREDICTIONS", "SCHEDULES", "ContinuousSchedule", "NoiseSchedule", "ddim_sample",
           "ddim_timesteps", "ddpm_sample", "sinusoidal_embedding"]  # fmt: skip
