"""Implicit Geometric Regularization (IGR, Gropp et al. 2020): a signed distance function learned from a point
cloud alone.

Given surface points ``{x_i}_{i in I}`` (and optionally their normals ``n_i``), IGR fits ``f(x; theta)`` with

    l(theta) = l_X(theta) + lambda E_x (||grad_x f(x; theta)|| - 1)^2

    l_X(theta) = 1/|I| sum_{i in I} ( |f(x_i; theta)| + tau ||grad_x f(x_i; theta) - n_i|| )

The first term puts the zero level set through the points (and, with ``tau > 0``, aligns the gradient with the
normals); the second, the eikonal term, asks ``f`` to have unit gradient everywhere, as a signed distance has.
Nothing says where inside or outside is: the implicit regularisation of the eikonal term on a network started as
the SDF of a sphere (geometric initialisation, :mod:`vision3d.implicit.networks`) finds a smooth surface through
the points, with ``f < 0`` inside.

The expectation ``E_x`` is over a distribution ``D`` of points around the surface, as in the paper: every surface
point of the batch perturbed by a Gaussian whose standard deviation ``sigma_i`` is the distance from ``x_i`` to its
50th nearest neighbour, plus one eighth as many points uniform in the padded bounding box. The paper's
``lambda = 0.1``, ``tau = 1``; the network here is smaller than the paper's 8 x 512 so it trains on a CPU.

    network, history = fit_igr(points, normals=None, config=IGRConfig(steps=600), seed=0)
    mesh = extract_mesh(network, bounds=(-1, 1), resolution=128)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor
from tqdm.auto import tqdm

from mpenv.device import get_device, seed_everything
from vision3d.implicit.networks import ImplicitNetwork, check_points, flush_denormals, gradient

__all__ = ["IGRConfig", "fit_igr", "igr_loss", "local_sigmas", "sample_around"]

History = dict[str, list[float]]
Callback = Callable[[int, ImplicitNetwork, dict[str, float]], None]


@dataclass(frozen=True)
class IGRConfig:
    """IGR's hyperparameters (the paper's in brackets where they differ)."""

    hidden: tuple[int, ...] = (128, 128, 128, 128)
    """hidden layer widths [8 x 512]"""
    skip: bool = True
    """concatenate the input to the middle layer"""
    init_radius: float = 0.5
    """radius r of the sphere f starts as, f(x) ~ ||x|| - r [1]"""
    steps: int = 600
    """optimizer steps, each on one batch of surface points"""
    batch_size: int = 4096
    """surface points per step (all of them when there are fewer)"""
    lr: float = 5e-3
    """Adam's learning rate, decayed by a cosine to lr_final"""
    lr_final: float = 1e-4
    """the learning rate at the last step"""
    eikonal_weight: float = 0.1
    """lambda, the weight of the eikonal term"""
    normal_weight: float = 1.0
    """tau, the weight of the normal term (used only when normals are given)"""
    neighbors: int = 50
    """sigma_i is the distance to this nearest neighbour"""
    global_fraction: float = 0.125
    """uniform box points per surface point of the batch"""
    box_padding: float = 0.1
    """the uniform points' box: the points' bounding box grown by this share of its largest side on every side"""


def local_sigmas(points: Tensor, k: int) -> Tensor:
    """The distance from every point [N, 3] to its ``k``-th nearest other point [N] (fewer for small clouds)."""
    if len(points) < 2:
        raise ValueError("need at least two points to measure their spacing")
    k = min(k, len(points) - 1)
    cloud = points.detach().cpu().numpy()
    distances, _ = cKDTree(cloud).query(cloud, k=k + 1)  # the nearest is the point itself
    return torch.as_tensor(np.asarray(distances)[:, -1], dtype=points.dtype, device=points.device)


def sample_around(surface: Tensor, sigmas: Tensor, low: Tensor, high: Tensor, n_global: int,
                  generator: torch.Generator) -> Tensor:  # fmt: skip
    """IGR's distribution ``D``: each surface point plus ``N(0, sigma_i^2 I)``, then ``n_global`` points uniform in
    the box ``[low, high]``."""
    local = surface + sigmas[:, None] * torch.randn(surface.shape, generator=generator, device=surface.device,
                                                    dtype=surface.dtype)  # fmt: skip
    uniform = torch.rand((n_global, 3), generator=generator, device=surface.device, dtype=surface.dtype)
    return torch.cat([local, low + (high - low) * uniform])


def igr_loss(network: ImplicitNetwork, surface: Tensor, normals: Tensor | None, around: Tensor,
             config: IGRConfig) -> tuple[Tensor, dict[str, float]]:  # fmt: skip
    """``l(theta)`` on one batch (module docstring) and its terms as floats."""
    x = torch.cat([surface, around]).requires_grad_(True)
    f = network(x)
    n_surface = len(surface)
    grad = gradient(f, x)
    surface_term = f[:n_surface].abs().mean()
    eikonal_term = ((grad[n_surface:].norm(dim=-1) - 1.0) ** 2).mean()
    loss = surface_term + config.eikonal_weight * eikonal_term
    terms = {"surface": surface_term.item(), "eikonal": eikonal_term.item()}
    if normals is not None:
        normal_term = (grad[:n_surface] - normals).norm(dim=-1).mean()
        loss = loss + config.normal_weight * normal_term
        terms["normal"] = normal_term.item()
    terms["loss"] = loss.item()
    return loss, terms


def _check_inputs(points: object, normals: object | None) -> tuple[Tensor, Tensor | None]:
    points = check_points(points, "points")
    if normals is None:
        return points, None
    normals = check_points(normals, "normals")
    if normals.shape != points.shape:
        raise ValueError(f"normals {tuple(normals.shape)} must match points {tuple(points.shape)}")
    lengths = normals.norm(dim=-1, keepdim=True)
    if (lengths < 1e-12).any():
        raise ValueError("normals contains zero-length normals")
    return points, normals / lengths


def fit_igr(points: object, normals: object | None = None, config: IGRConfig | None = None, seed: int = 0,
            device: str | torch.device = "auto", progress: bool = False,
            callback: Callback | None = None) -> tuple[ImplicitNetwork, History]:  # fmt: skip
    """Fit an SDF network to surface ``points`` [N, 3] (and unit ``normals`` [N, 3]) by minimising IGR's loss.

    Returns the network in eval mode (float32, on ``device``; ``f < 0`` inside) and the history of the loss and
    its terms per step (``"loss"``, ``"surface"``, ``"eikonal"``, ``"normal"`` with normals). ``callback(step,
    network, terms)`` runs after every step. ``seed`` fixes the initialisation and every sample drawn.
    """
    config = config or IGRConfig()
    points, normals = _check_inputs(points, normals)
    if config.steps < 1 or config.batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {config.steps} and {config.batch_size}")
    device = get_device(device)
    seed_everything(seed)
    generator = torch.Generator(device=device).manual_seed(seed)

    points = points.to(device, torch.float32)
    normals = normals.to(device, torch.float32) if normals is not None else None
    sigmas = local_sigmas(points, config.neighbors)
    low, high = points.min(dim=0).values, points.max(dim=0).values
    margin = config.box_padding * (high - low).max()
    low, high = low - margin, high + margin

    network = ImplicitNetwork(config.hidden, skip=config.skip, radius=config.init_radius).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr_final)
    batch_size = min(config.batch_size, len(points))
    n_global = max(1, round(config.global_fraction * batch_size))
    history: History = {}

    network.train()
    with flush_denormals():
        for step in tqdm(range(config.steps), desc="IGR", disable=not progress):
            index = torch.randperm(len(points), generator=generator, device=device)[:batch_size]
            around = sample_around(points[index], sigmas[index], low, high, n_global, generator)
            batch_normals = normals[index] if normals is not None else None
            loss, terms = igr_loss(network, points[index], batch_normals, around, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            for name, value in terms.items():
                history.setdefault(name, []).append(value)
            if callback is not None:
                callback(step, network, terms)
    return network.eval(), history
