"""Occupancy Networks (Mescheder et al. 2019): the surface as the decision boundary of a classifier.

A network ``f_theta(p, z) -> [0, 1]`` gives the probability that point ``p`` is inside the shape described by the
condition ``z``. It is trained by binary cross-entropy on points ``p_ij`` with occupancies ``o_ij in {0, 1}``
(the paper's eq. 3, for shapes ``i`` and points ``j``):

    L(theta) = sum_i sum_j BCE(f_theta(p_ij, z_i), o_ij),     BCE(q, o) = -o log q - (1 - o) log(1 - q)

and the surface is the level set ``f = tau`` (``tau = 0.5``; :func:`~vision3d.implicit.meshing.extract_mesh` with
``level=0.5, inside="positive"``). The network outputs the logit ``l`` with ``f = sigmoid(l)``, so the loss is
computed from logits (numerically stable) and ``l = 0`` is the same surface.

The paper's condition ``z`` comes from an encoder of an image or a point cloud. Here it is the simplest one: a
learned code per shape (``nn.Embedding``), i.e. conditioning on a class index, so one network holds several
shapes; with one shape there is no code and ``f_theta(p)`` fits that shape alone.

    samples = occupancy_samples(make_scene("box").shape, 10_000, seed=0)
    network, history = fit_occupancy(samples.points, samples.values)
    inside = network.occupancy(query) > 0.5
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mpenv.device import get_device, seed_everything
from vision3d.implicit.networks import ImplicitNetwork, check_points, flush_denormals

__all__ = ["OccupancyConfig", "OccupancyNetwork", "fit_occupancy"]

History = dict[str, list[float]]


@dataclass(frozen=True)
class OccupancyConfig:
    """The classifier and its training (Adam on minibatches of labelled points)."""

    hidden: tuple[int, ...] = (128, 128, 128, 128)
    """hidden layer widths (the paper uses 5 ResNet blocks of 256 with conditional batch norm)"""
    skip: bool = True
    """concatenate the input to the middle layer"""
    code_dim: int = 8
    """size of the learned code per shape (used when there are several shapes)"""
    steps: int = 1000
    """optimizer steps"""
    batch_size: int = 2048
    """labelled points per step"""
    lr: float = 3e-3
    """Adam's learning rate, decayed by a cosine to lr_final"""
    lr_final: float = 1e-4
    """the learning rate at the last step"""


class OccupancyNetwork(nn.Module):
    """Occupancy logits ``l(p, z_k)`` [N] for points [N, 3] of shape ``k``; ``occupancy`` is ``sigmoid(l)``.

    With ``n_shapes > 1`` every shape has a learned code ``z_k`` (``nn.Embedding``) that is concatenated to the
    point; ``shape_id`` selects it, one int for all points or one per point.
    """

    def __init__(self, n_shapes: int = 1, hidden: tuple[int, ...] = (128, 128, 128, 128), code_dim: int = 8,
                 skip: bool = True) -> None:  # fmt: skip
        super().__init__()
        if n_shapes < 1:
            raise ValueError(f"need at least one shape, got n_shapes={n_shapes}")
        self.n_shapes = n_shapes
        self.codes = nn.Embedding(n_shapes, code_dim) if n_shapes > 1 else None
        self.decoder = ImplicitNetwork(hidden, latent_dim=code_dim if n_shapes > 1 else 0, skip=skip,
                                       activation="relu", geometric_init=False)  # fmt: skip

    def _code(self, x: Tensor, shape_id: int | Tensor | None) -> Tensor | None:
        if self.codes is None:
            if shape_id not in (None, 0) and not (isinstance(shape_id, Tensor) and (shape_id == 0).all()):
                raise ValueError("this network holds one shape: shape_id must be None or 0")
            return None
        if shape_id is None:
            raise ValueError(f"this network holds {self.n_shapes} shapes: pass shape_id")
        ids = torch.as_tensor(shape_id, dtype=torch.long, device=x.device).expand(x.shape[0])
        if ((ids < 0) | (ids >= self.n_shapes)).any():
            raise ValueError(f"shape_id must lie in [0, {self.n_shapes}), got {ids.unique().tolist()}")
        return self.codes(ids)

    def forward(self, x: Tensor, shape_id: int | Tensor | None = None) -> Tensor:
        """Occupancy logits [N]; the surface is ``logit = 0``."""
        return self.decoder(x, self._code(x, shape_id))

    def occupancy(self, x: Tensor, shape_id: int | Tensor | None = None) -> Tensor:
        """The probability [N] that each point is inside."""
        return torch.sigmoid(self(x, shape_id))


def _check_labels(points: object, labels: object, shape_ids: object | None) -> tuple[Tensor, Tensor, Tensor]:
    points = check_points(points, "points")
    labels = torch.as_tensor(labels).reshape(-1).to(torch.float32)
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"got {labels.shape[0]} labels for {points.shape[0]} points")
    if not ((labels == 0) | (labels == 1)).all():
        raise ValueError("labels must be occupancies 0 (outside) or 1 (inside)")
    if shape_ids is None:
        return points, labels, torch.zeros(len(points), dtype=torch.long)
    shape_ids = torch.as_tensor(shape_ids).reshape(-1)
    if shape_ids.is_floating_point() or shape_ids.shape[0] != points.shape[0] or (shape_ids < 0).any():
        raise ValueError(f"shape_ids must be {points.shape[0]} non-negative integers, one per point")
    return points, labels, shape_ids.long()


def fit_occupancy(points: object, labels: object, config: OccupancyConfig | None = None, seed: int = 0,
                  shape_ids: object | None = None, device: str | torch.device = "auto", progress: bool = False,
                  callback: Callable[[int, OccupancyNetwork, dict[str, float]], None] | None = None,
                  ) -> tuple[OccupancyNetwork, History]:  # fmt: skip
    """Fit an occupancy classifier to ``points`` [N, 3] with ``labels`` [N] (1 inside, 0 outside).

    ``shape_ids`` [N] (integers ``0 .. K-1``) says which shape each point belongs to; with ``K > 1`` shapes the
    network learns a code per shape. Returns the network in eval mode and the history (``"loss"``, the mean BCE,
    and ``"accuracy"`` of the batch, per step); ``callback(step, network, terms)`` runs after every step.
    """
    config = config or OccupancyConfig()
    points, labels, shape_ids = _check_labels(points, labels, shape_ids)
    if config.steps < 1 or config.batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {config.steps} and {config.batch_size}")
    device = get_device(device)
    seed_everything(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    points, labels, shape_ids = points.to(device, torch.float32), labels.to(device), shape_ids.to(device)

    n_shapes = int(shape_ids.max()) + 1
    network = OccupancyNetwork(n_shapes, config.hidden, config.code_dim, config.skip).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr_final)
    batch_size = min(config.batch_size, len(points))
    history: History = {}

    network.train()
    with flush_denormals():
        for step in tqdm(range(config.steps), desc="occupancy", disable=not progress):
            index = torch.randint(len(points), (batch_size,), generator=generator, device=device)
            logits = network(points[index], shape_ids[index] if n_shapes > 1 else None)
            loss = F.binary_cross_entropy_with_logits(logits, labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            terms = {"loss": loss.item(), "accuracy": ((logits > 0) == (labels[index] > 0.5)).float().mean().item()}
            for name, value in terms.items():
                history.setdefault(name, []).append(value)
            if callback is not None:
                callback(step, network, terms)
    return network.eval(), history
