"""Image quality against ground truth, as novel-view synthesis reports it (NeRF, Gaussian splatting).

- PSNR = -10 log10(MSE) for images in [0, 1] (decibels; higher is better).
- SSIM (Wang et al. 2004): local means ``mu``, variances ``sigma^2`` and covariance ``sigma_xy`` under an 11x11
  Gaussian window of standard deviation 1.5, per channel::

      SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

  with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = 1``, averaged over the pixels whose window lies inside the
  image (scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(prediction: Tensor, target: Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"images differ in shape: {list(prediction.shape)} and {list(target.shape)}")
    if prediction.numel() == 0:
        raise ValueError("images are empty")


def psnr(prediction: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1] (``inf`` for identical images)."""
    _check_pair(prediction, target)
    mse = F.mse_loss(prediction.double(), target.double()).item()
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(prediction: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Local SSIM ``[C, H - w + 1, W - w + 1]`` of images [H, W, C] (or [H, W]), in the images' dtype and
    differentiable: ``1 - ssim_map(...).mean()`` is the D-SSIM term of Gaussian splatting's loss."""
    _check_pair(prediction, target)
    if min(prediction.shape[:2]) < window_size:
        raise ValueError(f"images of {list(prediction.shape[:2])} pixels are smaller than the SSIM window "
                         f"({window_size} pixels)")
    x, y = (image.reshape(*image.shape[:2], -1).permute(2, 0, 1)[:, None] for image in (prediction, target))
    g = gaussian_window(window_size, sigma).to(x)
    window = (g[:, None] * g[None, :])[None, None]

    def local_mean(image: Tensor) -> Tensor:
        return F.conv2d(image, window)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)))[:, 0]


def ssim(prediction: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> float:
    """Mean structural similarity of two images [H, W, C] (or [H, W]) in [0, 1], computed in float64."""
    return ssim_map(prediction.double(), target.double(), window_size, sigma).mean().item()
