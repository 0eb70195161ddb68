"""A multi-stage heatmap network for 2D human pose (Convolutional Pose Machines, Wei et al. 2016; stacked, refining
stages as in Newell et al. 2016), small enough to train on a CPU.

The image goes through a convolutional backbone to features ``F`` at stride 2 (a 64x64 image gives 32x32 maps).
Stage 1 predicts one heatmap per joint from ``F`` alone; every later stage sees ``F`` and the previous stage's
heatmaps, so it can use the other joints' current beliefs (where the hip is constrains where the knee can be) over a
receptive field that grows with dilated convolutions::

    H_1 = g_1(F),        H_t = g_t([F, H_{t-1}])   for t = 2 .. T

Training has **intermediate supervision**: every stage is pulled towards the Gaussian target maps
``h_k(x, y) = exp(-|(x, y) - p_k|^2 / 2 sigma^2)`` (:func:`vision3d.body.heatmaps.gaussian_heatmaps`), which keeps
gradients strong in the early stages of a deep stack. The maps are compared as distributions over the pixels, the
network's through a softmax over each map, the target's normalized to sum to 1, by the cross-entropy::

    L = sum_t sum_k  - sum_{x, y} q_k(x, y) log softmax(H_t,k)(x, y),      q_k = h_k / sum h_k

(joints outside the image are left out). The squared error ``||H_t,k - h_k||^2`` of the original papers works too,
but from a random start it first settles on all-zero maps -- 24 small bumps are a tiny target -- and on a CPU budget
it did not leave that plateau in 4 epochs of 4,000 images, where the cross-entropy trains from the first batch.

Decoding takes the argmax of each map with the quarter-pixel refinement (:mod:`vision3d.body.heatmaps`) and maps
heatmap pixel ``(x_h, y_h)`` (centres at integers) back to image pixels ``(x_h + 0.5) * stride`` (centres at
``j + 0.5``, the camera convention of :mod:`vision3d.body.synthetic`).

    net = HeatmapPoseNet(stages=3)
    loss, terms = net.loss(images, keypoints)          # images [N, 3, 64, 64] in [-0.5, 0.5], keypoints [N, 24, 2] px
    keypoints = net.predict(images)                    # the last stage; net.predict(images, stage=1) the first
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vision3d.body.heatmaps import argmax_decode, gaussian_heatmaps, quarter_offset_refine

N_JOINTS = 24


def conv_block(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU (the padding keeps the size at stride 1)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation, dilation=dilation,
                                   bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())  # fmt: skip


def backbone(width: int, in_channels: int = 3) -> nn.Sequential:
    """Image [N, in_channels, H, W] -> features [N, width, H/2, W/2]."""
    return nn.Sequential(conv_block(in_channels, width // 2), conv_block(width // 2, width, stride=2),
                         conv_block(width, width), conv_block(width, width, dilation=2))  # fmt: skip


class HeatmapPoseNet(nn.Module):
    """``stages`` refining heatmap stages on a shared backbone (module docstring)."""

    stride = 2

    def __init__(self, stages: int = 3, width: int = 48, n_joints: int = N_JOINTS, sigma: float = 1.0):
        super().__init__()
        if stages < 1 or width < 8 or sigma <= 0:
            raise ValueError(f"need stages >= 1, width >= 8 and sigma > 0, got {stages}, {width}, {sigma}")
        self.n_joints, self.sigma = n_joints, sigma
        self.features = backbone(width)

        def stage(in_channels: int) -> nn.Sequential:
            return nn.Sequential(conv_block(in_channels, width), conv_block(width, width, dilation=2),
                                 conv_block(width, width, dilation=4), nn.Conv2d(width, n_joints, 1))  # fmt: skip

        self.stages = nn.ModuleList([stage(width)] + [stage(width + n_joints) for _ in range(stages - 1)])

    def forward(self, images: Tensor) -> list[Tensor]:
        """The heatmaps of every stage, each [N, K, H/2, W/2]."""
        features = self.features(images)
        heatmaps = [self.stages[0](features)]
        for stage in self.stages[1:]:
            heatmaps.append(stage(torch.cat([features, heatmaps[-1]], dim=1)))
        return heatmaps

    def targets(self, keypoints: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Target distributions [N, K, h * w] at heatmap resolution (normalized Gaussians) and which joints are
        inside the image [N, K]."""
        height, width = size
        in_heatmap = keypoints / self.stride - 0.5  # image pixel centres j + 0.5 -> heatmap centres at integers
        inside = ((in_heatmap >= -0.5) & (in_heatmap <= in_heatmap.new_tensor([width - 0.5, height - 0.5]))).all(-1)
        target = gaussian_heatmaps(in_heatmap, height, width, self.sigma).flatten(-2)
        return target / target.sum(-1, keepdim=True).clamp_min(1e-12), inside

    def loss(self, images: Tensor, keypoints: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        heatmaps = self.forward(images)
        target, inside = self.targets(keypoints.to(images.dtype), heatmaps[0].shape[-2:])
        per_stage = []
        for h in heatmaps:
            cross_entropy = -(target * torch.log_softmax(h.flatten(-2), dim=-1)).sum(-1)  # [N, K]
            per_stage.append(cross_entropy[inside].sum() / len(images))
        return sum(per_stage), {f"stage{t + 1}": value.detach() for t, value in enumerate(per_stage)}

    @torch.no_grad()
    def predict(self, images: Tensor, stage: int | None = None) -> Tensor:
        """Keypoints [N, K, 2] in image pixels from the heatmaps of ``stage`` (1-based; default the last)."""
        heatmaps = self.forward(images)[(stage or len(self.stages)) - 1]
        return self.decode(heatmaps)

    def decode(self, heatmaps: Tensor) -> Tensor:
        coords, _ = argmax_decode(heatmaps)
        return (quarter_offset_refine(heatmaps, coords) + 0.5) * self.stride

    @property
    def n_steps(self) -> int:
        return len(self.stages)
