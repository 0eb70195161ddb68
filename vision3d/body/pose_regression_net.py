"""Direct regression of 2D joint coordinates, alone (DeepPose, Toshev & Szegedy 2014) or refined by Iterative Error
Feedback (IEF, Carreira et al. 2016), small enough to train on a CPU.

Direct regression maps the image to the 2K coordinates in one shot: a convolutional network down to 8x8, then fully
connected layers. IEF instead starts from the mean pose ``y_0`` and predicts, ``steps`` times, a correction from the
image **and the current estimate**, the estimate drawn as one Gaussian heatmap per joint stacked onto the image's
channels::

    y_t = y_{t-1} + f([x, render(y_{t-1})])                      t = 1 .. T

Each step is trained towards a bounded correction, the error clipped to length ``L`` per joint, so a step never
has to jump across the image and the later steps learn the fine adjustments::

    e_t = min(L, |y* - y_{t-1}|) (y* - y_{t-1}) / |y* - y_{t-1}|,      loss = sum_t || f(...) - e_t ||^2

Here ``y_{t-1}`` is the network's own current estimate (detached), where the paper precomputes fixed paths; with
``steps=1`` and ``L`` large this is plain direct regression from the mean pose. Coordinates are learned in units of
the image size, centred (``(p - S/2) / S``), and returned in pixels.

    net = RegressionPoseNet(steps=3)          # IEF; RegressionPoseNet(steps=1): direct regression
    net.set_mean_pose(train_keypoints)        # y_0
    loss, terms = net.loss(images, keypoints)
    keypoints = net.predict(images)           # after all steps; net.predict(images, stage=1) after the first
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vision3d.body.heatmaps import gaussian_heatmaps
from vision3d.body.pose_heatmap_net import N_JOINTS, backbone, conv_block


def bounded_correction(error: Tensor, max_length: float) -> Tensor:
    """``e = min(L, |error|) error / |error|`` per joint: the error [..., 2], shortened to at most ``L``."""
    length = error.norm(dim=-1, keepdim=True)
    return error * (max_length / length.clamp_min(1e-12)).clamp(max=1.0)


class RegressionPoseNet(nn.Module):
    """Coordinates from the image, refined over ``steps`` error-feedback steps (module docstring)."""

    def __init__(self, steps: int = 1, width: int = 48, n_joints: int = N_JOINTS, image_size: int = 64,
                 max_correction: float = 0.1, render_sigma: float = 2.0):
        super().__init__()
        if steps < 1 or width < 8 or max_correction <= 0 or image_size < 16:
            raise ValueError(f"need steps >= 1, width >= 8, max_correction > 0, image_size >= 16, got {steps}, "
                             f"{width}, {max_correction}, {image_size}")
        self.steps, self.n_joints, self.image_size = steps, n_joints, image_size
        # one step of direct regression has no estimate to correct: let it go the whole way
        self.max_correction = max_correction if steps > 1 else math.inf
        self.render_sigma = render_sigma
        in_channels = 3 + (n_joints if steps > 1 else 0)
        self.body = nn.Sequential(backbone(width, in_channels), conv_block(width, 2 * width, stride=2),
                                  conv_block(2 * width, 2 * width, stride=2), nn.Flatten())  # fmt: skip
        flat = 2 * width * (image_size // 8) ** 2
        self.head = nn.Sequential(nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, 2 * n_joints))
        nn.init.zeros_(self.head[-1].weight)  # start at the mean pose: the first predictions are y_0
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("mean_pose", torch.zeros(n_joints, 2))

    def set_mean_pose(self, keypoints: Tensor) -> None:
        """``y_0``: the mean of training keypoints [N, K, 2] (pixels)."""
        self.mean_pose.copy_(self.normalize(keypoints.to(self.mean_pose)).mean(0))

    def normalize(self, keypoints: Tensor) -> Tensor:
        return (keypoints - self.image_size / 2) / self.image_size

    def denormalize(self, coords: Tensor) -> Tensor:
        return coords * self.image_size + self.image_size / 2

    def correction(self, images: Tensor, estimate: Tensor) -> Tensor:
        """``f([x, render(y)])``: [N, K, 2] in normalized units."""
        inputs = images
        if self.steps > 1:  # image pixel centres j + 0.5 -> the heatmaps' integer centres
            rendered = gaussian_heatmaps(self.denormalize(estimate.detach()) - 0.5, self.image_size, self.image_size,
                                         self.render_sigma)  # fmt: skip
            inputs = torch.cat([images, rendered.to(images.dtype)], dim=1)
        return self.head(self.body(inputs)).view(-1, self.n_joints, 2)

    def forward(self, images: Tensor) -> list[Tensor]:
        """The estimate after every step, each [N, K, 2], normalized units."""
        estimate = self.mean_pose.expand(len(images), -1, -1)
        estimates = []
        for _ in range(self.steps):
            estimate = estimate.detach() + self.correction(images, estimate)
            estimates.append(estimate)
        return estimates

    def loss(self, images: Tensor, keypoints: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        target = self.normalize(keypoints.to(images.dtype))
        estimate = self.mean_pose.expand(len(images), -1, -1)
        per_step = []
        for _ in range(self.steps):
            bounded = bounded_correction(target - estimate, self.max_correction)
            step = self.correction(images, estimate)
            per_step.append((step - bounded).pow(2).sum((1, 2)).mean())
            estimate = (estimate + step).detach()
        return sum(per_step), {f"step{t + 1}": value.detach() for t, value in enumerate(per_step)}

    @torch.no_grad()
    def predict(self, images: Tensor, stage: int | None = None) -> Tensor:
        """Keypoints [N, K, 2] in pixels after ``stage`` steps (1-based; default all)."""
        return self.denormalize(self.forward(images)[(stage or self.steps) - 1])

    @property
    def n_steps(self) -> int:
        return self.steps
