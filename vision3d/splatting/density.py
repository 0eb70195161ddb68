"""Adaptive density control of 3D Gaussian splatting: clone, split, prune and the opacity reset (Kerbl et al. 2023).

Gradient descent moves Gaussians but cannot make more of them where the scene needs detail, nor remove the ones
that contribute nothing. Every ``densify_every`` steps (the paper: 100, from step 500 to 15,000) the Gaussians
whose **view-space positional gradient** is large on average get company::

    g_i = 1/n_i sum_{renders where i is visible} || dL / d mu'_i ||      (mu'_i in NDC units, below)
    densify i   if   g_i >= tau_pos                                        (the paper: tau_pos = 2e-4)

A large ``g_i`` means the loss wants to move Gaussian ``i`` on screen: the region is under-reconstructed (a small
Gaussian should be copied) or over-reconstructed (a large Gaussian covers detail it cannot express)::

    clone  if  max(s_i) <= percent_dense * extent     a copy at the same place; the gradient steps pull them apart
    split  if  max(s_i) >  percent_dense * extent     two Gaussians at positions drawn from N(mu_i, Sigma_i), scales
                                                      s_i / 1.6, the rest copied; the original is removed

The paper's split changes what the scene looks like: the halves land at random, and both are narrower in every
direction, so a large Gaussian's footprint breaks into two smaller blobs. ``split_mode="moments"`` splits along
the longest axis ``e`` (scale ``s``) instead, deterministically, so that the pair has the parent's mean and
covariance::

    mu_+- = mu_i +- a s e,     s' = s sqrt(1 - a^2)  along e (other axes kept),     a = split_offset

(the mixture's variance along ``e`` is ``s^2 (1 - a^2) + a^2 s^2 = s^2``). On a fitted view the image after such a
split stays within about 35 dB of the one before, against 23 dB for the paper's split (tests/test_splatting_density).

The paper copies the opacity too, so a clone doubles the coverage where it sits and a split adds some. With
``keep_opacity`` (the default) the copies share it instead, ``o' = 1 - (1 - o)^(1/k)`` for ``k`` stacked copies,
as Rota Bulo et al. (2024, "Revising densification in Gaussian splatting") correct it: the image barely changes
at the moment of densification and the optimizer continues from where it was.

and Gaussians are pruned when they are almost transparent (``o_i < min_opacity``, the paper's 0.005) or, after
the first opacity reset, when they are huge (wider than ``max_screen_size`` pixels on screen, or than a tenth of
the scene's extent in world space). Every 3000 steps all opacities are clamped to at most 0.01
(:func:`reset_opacity`), so the optimizer has to earn them back and the Gaussians that do not are pruned.

The gradient is measured in normalised device coordinates, as the paper's threshold is: ``mu'`` in pixels maps
to NDC as ``x_ndc = 2 u / W - 1``, so ``dL/dx_ndc = (W / 2) dL/du`` (and ``H / 2`` for ``v``).

Every change of the set of Gaussians has to reach the optimizer too: :func:`remap_adam_state` carries Adam's
moments over for the rows that survive (and for clones and split halves, which start from their parent's moments
set to zero, as the paper's code does) and resizes the parameters in place of the optimizer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vision3d.splatting.gaussians import Gaussians, quaternion_to_rotation

__all__ = [
    "DensityConfig",
    "GradientStats",
    "densify_and_prune",
    "remap_adam_state",
    "reset_opacity",
]


@dataclass
class DensityConfig:
    """The paper's defaults; ``scene_extent`` is the radius of the cameras' bounding sphere times 1.1 (3DGS)."""

    scene_extent: float = 1.0
    grad_threshold: float = 2e-4  # tau_pos, in NDC units
    percent_dense: float = 0.01  # clone below, split above this fraction of the extent
    min_opacity: float = 0.005
    max_screen_size: float | None = None  # pixels; None until the first opacity reset, as in the paper
    split_mode: str = "sample"  # "sample": the paper's; "moments": the pair keeps the parent's mean and covariance
    split_count: int = 2  # "sample" only; a moment-matched split makes two
    split_scale_divisor: float = 1.6  # "sample": 0.8 * split_count in the paper's code
    split_offset: float = 0.6  # "moments": the halves sit at +- this many of the longest axis's scale
    keep_opacity: bool = True  # clones and halves get 1 - (1 - o)^(1/k) (Rota Bulo et al. 2024); False: o (3DGS)


@dataclass
class GradientStats:
    """Per-Gaussian sums between two densifications: ``sum ||dL/dmu'||``, the number of renders where the Gaussian
    was visible, and its largest screen radius."""

    grad_norm_sum: Tensor  # [N]
    visible_count: Tensor  # [N]
    max_radius: Tensor  # [N]

    @classmethod
    def zeros(cls, n: int, device: torch.device | str = "cpu") -> GradientStats:
        return cls(torch.zeros(n, device=device), torch.zeros(n, device=device), torch.zeros(n, device=device))

    def accumulate(self, means2d_grad: Tensor, radii: Tensor, width: int, height: int) -> None:
        """Add one render: ``means2d_grad [N, 2]`` is ``dL/dmu'`` in pixels (``RenderOutput.means2d.grad``)."""
        if means2d_grad.shape != (len(self.grad_norm_sum), 2) or radii.shape != (len(self.grad_norm_sum),):
            raise ValueError(f"means2d_grad must be [{len(self.grad_norm_sum)}, 2] and radii "
                             f"[{len(self.grad_norm_sum)}], got {list(means2d_grad.shape)} and {list(radii.shape)}")
        to_ndc = means2d_grad.new_tensor([width / 2.0, height / 2.0])
        visible = radii > 0
        norms = (means2d_grad.detach() * to_ndc).norm(dim=-1).to(self.grad_norm_sum)
        self.grad_norm_sum += torch.where(visible, norms, 0.0)
        self.visible_count += visible.to(self.visible_count)
        self.max_radius = torch.maximum(self.max_radius, radii.to(self.max_radius))

    def mean_gradient(self) -> Tensor:
        """``g_i``, 0 for Gaussians never visible."""
        return self.grad_norm_sum / self.visible_count.clamp_min(1)


def _split_samples(gaussians: Gaussians, rows: Tensor, count: int, generator: torch.Generator | None) -> Tensor:
    """``count`` draws per row from its Gaussian, ``mu + R (s * z)`` with ``z ~ N(0, I)``: [len(rows) * count, 3]."""
    means = gaussians.means.detach()[rows].repeat(count, 1)
    scales = gaussians.scales.detach()[rows].repeat(count, 1)
    rotations = quaternion_to_rotation(gaussians.quaternions.detach()[rows]).repeat(count, 1, 1)
    z = torch.randn(means.shape, generator=generator, dtype=means.dtype).to(means.device)
    return means + (rotations @ (scales * z)[..., None])[..., 0]


def _moment_matched_halves(halves: Gaussians, offset: float) -> Gaussians:
    """``halves`` holds two copies of each parent (``[parents, parents]``): move them to ``mu +- a s e`` along the
    longest axis and narrow that axis to ``s sqrt(1 - a^2)``, in place (module docstring)."""
    n = len(halves) // 2
    log_scales = halves.log_scales.clone()
    axis = log_scales[:n].argmax(dim=-1)
    rows = torch.arange(n, device=axis.device)
    direction = quaternion_to_rotation(halves.quaternions[:n])[rows, :, axis]  # the rotation's column = the axis
    step = offset * log_scales[rows, axis].exp()[:, None] * direction
    halves.means = halves.means + torch.cat([step, -step])
    log_scales[torch.cat([rows, rows + n]), axis.repeat(2)] += 0.5 * math.log(1 - offset**2)
    halves.log_scales = log_scales
    return halves


def _shared_opacity_logits(logits: Tensor, k: int) -> Tensor:
    """Logits of the opacity ``o'`` that ``k`` stacked copies need to cover like one of opacity ``o``:
    ``1 - (1 - o')^k = o``, so ``o' = 1 - (1 - o)^(1/k)``."""
    opacity = torch.sigmoid(logits)
    shared = 1 - (1 - opacity).pow(1.0 / k)
    return torch.logit(shared.clamp(1e-6, 1 - 1e-6))


def densify_and_prune(
    gaussians: Gaussians,
    stats: GradientStats,
    config: DensityConfig,
    generator: torch.Generator | None = None,
) -> tuple[Gaussians, Tensor, dict[str, int]]:
    """Clone, split and prune (module docstring). Returns the new Gaussians (detached leaves), ``sources [M]``, the
    row of ``gaussians`` each new row comes from (for :func:`remap_adam_state`), and the counts of each operation.

    New rows are ordered: the kept originals, then the clones, then the split halves; pruning applies to all."""
    n = len(gaussians)
    if config.split_mode not in ("sample", "moments"):
        raise ValueError(f"split_mode must be 'sample' or 'moments', got {config.split_mode!r}")
    if not 0 < config.split_offset < 1:
        raise ValueError(f"split_offset must be in (0, 1), got {config.split_offset}")
    if len(stats.grad_norm_sum) != n:
        raise ValueError(f"the gradient statistics cover {len(stats.grad_norm_sum)} Gaussians, the scene has {n}")
    device = gaussians.means.device
    largest_scale = gaussians.scales.detach().max(dim=-1).values
    dense_enough = largest_scale > config.percent_dense * config.scene_extent
    wants_more = stats.mean_gradient().to(device) >= config.grad_threshold
    clone_rows = (wants_more & ~dense_enough).nonzero()[:, 0]
    split_rows = (wants_more & dense_enough).nonzero()[:, 0]

    detached = gaussians.detach()
    kept = torch.ones(n, dtype=torch.bool, device=device)
    kept[split_rows] = False  # a split Gaussian is replaced by its halves
    split_count = 2 if config.split_mode == "moments" else config.split_count
    halves = detached.index(split_rows.repeat(split_count))
    if config.split_mode == "moments":
        halves = _moment_matched_halves(halves, config.split_offset)
    else:
        halves.means = _split_samples(gaussians, split_rows, split_count, generator)
        halves.log_scales = halves.log_scales - math.log(config.split_scale_divisor)
    clones = detached.index(clone_rows)
    if config.keep_opacity:
        # A clone and its parent stack: two opacities o' with 1 - (1 - o')^2 = o cover as the parent did. The
        # parent of a clone stays, so it is thinned too.
        clones.opacity_logits = _shared_opacity_logits(clones.opacity_logits, 2)
        halves.opacity_logits = _shared_opacity_logits(halves.opacity_logits, split_count)
        detached.opacity_logits = detached.opacity_logits.clone()
        detached.opacity_logits[clone_rows] = clones.opacity_logits
    keep_rows = kept.nonzero()[:, 0]
    grown = detached.index(keep_rows).cat(clones).cat(halves)
    sources = torch.cat([keep_rows, clone_rows, split_rows.repeat(split_count)])

    max_radius = stats.max_radius.to(device)[sources]
    # Transparency is judged on the parent's opacity: copies that share it are thinner, not less needed.
    prune = gaussians.opacities.detach()[sources] < config.min_opacity
    if config.max_screen_size is not None:
        prune |= max_radius > config.max_screen_size
        prune |= grown.scales.max(dim=-1).values > 0.1 * config.scene_extent
    survivors = (~prune).nonzero()[:, 0]
    result = grown.index(survivors)
    result = Gaussians(**{name: tensor.clone().contiguous() for name, tensor in result.parameters().items()})
    counts = {"cloned": len(clone_rows), "split": len(split_rows), "pruned": int(prune.sum()), "total": len(result)}
    # Whether a row is new (a clone or a half) is its position: beyond the kept originals.
    new_rows = torch.arange(len(grown), device=device) >= len(keep_rows)
    sources = torch.where(new_rows, -1 - sources, sources)[survivors]
    return result, sources, counts


def reset_opacity(gaussians: Gaussians, ceiling: float = 0.01) -> Gaussians:
    """Every opacity clamped to at most ``ceiling`` (the paper's reset every 3000 steps); other fields unchanged."""
    logit = math.log(ceiling / (1 - ceiling))
    fields = gaussians.detach().parameters()
    fields["opacity_logits"] = fields["opacity_logits"].clamp_max(logit).clone()
    return Gaussians(**fields)


def remap_adam_state(
    optimizer: torch.optim.Adam, old: Gaussians, new: Gaussians, sources: Tensor, reset: tuple[str, ...] = ()
) -> None:
    """Point ``optimizer``'s parameters at ``new``'s tensors and move Adam's moments with the rows.

    ``sources`` is what :func:`densify_and_prune` returns: ``k >= 0`` for a row kept from old row ``k`` (its moments
    move along), ``-1 - k`` for a clone or split half of old row ``k`` (moments start at zero). ``reset`` names
    fields whose moments start over for every row (the opacity after :func:`reset_opacity`). The step count is
    kept, so the bias correction goes on as before. Each parameter group must hold exactly one field's tensor."""
    old_fields, new_fields = old.parameters(), new.parameters()
    kept = sources >= 0
    from_rows = torch.where(kept, sources, 0)
    for group in optimizer.param_groups:
        (parameter,) = group["params"]
        name = next((n for n, t in old_fields.items() if t is parameter), None)
        if name is None:
            raise ValueError("an optimizer parameter is not one of the old Gaussians' tensors")
        replacement = new_fields[name].requires_grad_(True)
        state = optimizer.state.pop(parameter, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                moved = state[key][from_rows] * kept.view(-1, *([1] * (state[key].ndim - 1))).to(state[key])
                state[key] = torch.zeros_like(moved) if name in reset else moved
        if state:
            optimizer.state[replacement] = state
        group["params"] = [replacement]
