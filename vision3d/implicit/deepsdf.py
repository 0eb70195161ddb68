"""DeepSDF (Park et al. 2019): one network for a family of shapes, each shape a latent code, trained as an
auto-decoder (no encoder: the codes are optimised with the network).

Shape ``i`` is represented by a code ``z_i`` in ``R^d`` and sampled at points ``x_j`` with signed distances
``s_j`` (near-surface sampling, :func:`vision3d.scenes.sdf_samples`). The decoder ``f_theta(x, z)`` approximates
``s``; with the clamped L1 loss ``L(f, s) = |clamp(f, -delta, delta) - clamp(s, -delta, delta)|`` (which spends
the capacity near the surface) and a zero-mean Gaussian prior ``p(z_i) = N(0, sigma^2 I)`` on the codes, training
is the maximum a posteriori estimate of the network and all codes (the paper's eq. 9):

    argmin_{theta, {z_i}}  sum_i ( sum_{j=1}^{K} L(f_theta(x_j, z_i), s_j) + 1/sigma^2 ||z_i||_2^2 )

Codes start at ``z_i ~ N(0, 0.01^2 I)``. A minibatch mixes points of several shapes, so each point carries its
shape's prior term divided by its shape's number of points ``K_i``, and the batch mean is an unbiased estimate of
the objective above divided by the number of points.

Inference (the paper's eq. 10): for an unseen shape the network is frozen and only a new code is optimised, from
``z ~ N(0, 0.01^2 I)``, on the same objective over that shape's samples:

    z_hat = argmin_z  sum_j L(f_theta(x_j, z), s_j) + 1/sigma^2 ||z||_2^2

The samples may cover part of the shape only (the paper's shape completion from a depth image).

    model, history = fit_deepsdf([sdf_samples(s, 8192, seed=i) for i, s in enumerate(shapes)])
    z = infer_code(model.decoder, sdf_samples(new_shape, 8192, seed=99))
    mesh = extract_mesh(lambda x: model.decoder(x, z), bounds=(-1, 1))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mpenv.device import get_device, module_device, seed_everything
from vision3d.implicit.networks import ImplicitNetwork, check_points, flush_denormals
from vision3d.scenes.samplers import PointSamples

__all__ = ["DeepSDF", "DeepSDFConfig", "clamped_l1", "fit_deepsdf", "infer_code"]

History = dict[str, list[float]]


@dataclass(frozen=True)
class DeepSDFConfig:
    """The auto-decoder and its training (the paper's values in brackets where they differ)."""

    hidden: tuple[int, ...] = (128, 128, 128, 128)
    """decoder hidden widths [8 x 512]"""
    skip: bool = True
    """concatenate the input (point and code) to the middle layer, as the paper does"""
    latent_dim: int = 8
    """code size d [256]"""
    clamp: float = 0.1
    """delta, the clamping distance of the L1 loss"""
    code_init_std: float = 0.01
    """codes start as N(0, code_init_std^2 I)"""
    code_prior_std: float = 0.1
    """sigma, the prior's standard deviation; the regulariser is ||z||^2 / sigma^2 per shape"""
    init_radius: float = 0.5
    """the decoder starts as the SDF of a sphere of this radius (geometric initialisation; the paper starts from
    random weights)"""
    steps: int = 1500
    """optimizer steps in training"""
    batch_size: int = 4096
    """points per step, drawn from all shapes' samples"""
    lr: float = 2e-3
    """Adam's learning rate for the decoder, decayed by a cosine to lr_final"""
    code_lr: float = 5e-3
    """Adam's learning rate for the codes (also decayed)"""
    lr_final: float = 1e-4
    """the decoder's learning rate at the last step"""
    infer_steps: int = 300
    """optimizer steps of inference, on one code"""
    infer_lr: float = 1e-2
    """Adam's learning rate in inference, decayed by a cosine to a hundredth of it"""


class DeepSDF(nn.Module):
    """The decoder ``f_theta(x, z)`` and the training shapes' codes ``z_i`` (``codes.weight`` [n_shapes, d])."""

    def __init__(self, n_shapes: int, config: DeepSDFConfig) -> None:
        super().__init__()
        self.decoder = ImplicitNetwork(config.hidden, latent_dim=config.latent_dim, skip=config.skip,
                                       radius=config.init_radius)  # fmt: skip
        self.codes = nn.Embedding(n_shapes, config.latent_dim)
        nn.init.normal_(self.codes.weight, 0.0, config.code_init_std)

    def forward(self, x: Tensor, shape_id: int | Tensor) -> Tensor:
        """Signed distances [N] of points [N, 3] in training shape ``shape_id`` (one int, or one per point)."""
        ids = torch.as_tensor(shape_id, dtype=torch.long, device=x.device).expand(x.shape[0])
        return self.decoder(x, self.codes(ids))


def clamped_l1(prediction: Tensor, target: Tensor, delta: float) -> Tensor:
    """``|clamp(f, -delta, delta) - clamp(s, -delta, delta)|`` per point."""
    return (prediction.clamp(-delta, delta) - target.clamp(-delta, delta)).abs()


def _check_samples(samples: PointSamples, name: str) -> tuple[Tensor, Tensor]:
    if not isinstance(samples, PointSamples):
        raise ValueError(f"{name} must be PointSamples, got {type(samples).__name__}")
    points = check_points(samples.points, f"{name}.points")
    if samples.values is None:
        raise ValueError(f"{name} has no signed distances (values): use vision3d.scenes.sdf_samples")
    values = torch.as_tensor(samples.values).reshape(-1)
    if values.shape[0] != points.shape[0] or not torch.isfinite(values).all():
        raise ValueError(f"{name} needs one finite signed distance per point, got {values.shape[0]} for "
                         f"{points.shape[0]} points")  # fmt: skip
    return points, values


def fit_deepsdf(shapes_samples: Sequence[PointSamples], config: DeepSDFConfig | None = None, seed: int = 0,
                device: str | torch.device = "auto", progress: bool = False,
                callback: Callable[[int, DeepSDF, dict[str, float]], None] | None = None,
                ) -> tuple[DeepSDF, History]:  # fmt: skip
    """Train the decoder and one code per shape on signed-distance samples (``PointSamples`` with ``values``), one
    per shape. Returns the model in eval mode and the history per step of ``"loss"`` (the objective per point),
    ``"l1"`` (the clamped L1) and ``"code_norm"`` (the mean ``||z_i||``)."""
    config = config or DeepSDFConfig()
    if len(shapes_samples) == 0:
        raise ValueError("need the samples of at least one shape")
    checked = [_check_samples(s, f"shapes_samples[{i}]") for i, s in enumerate(shapes_samples)]
    if config.steps < 1 or config.batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {config.steps} and {config.batch_size}")
    device = get_device(device)
    seed_everything(seed)
    generator = torch.Generator(device=device).manual_seed(seed)

    points = torch.cat([p for p, _ in checked]).to(device, torch.float32)
    distances = torch.cat([s for _, s in checked]).to(device, torch.float32)
    counts = torch.tensor([len(p) for p, _ in checked], device=device)
    shape_ids = torch.repeat_interleave(torch.arange(len(checked), device=device), counts)
    # Each point carries 1 / (sigma^2 K_i) of its shape's prior term (module docstring).
    prior_weight = 1.0 / (config.code_prior_std**2 * counts.to(torch.float32))

    model = DeepSDF(len(checked), config).to(device)
    optimizer = torch.optim.Adam([{"params": model.decoder.parameters(), "lr": config.lr},
                                  {"params": model.codes.parameters(), "lr": config.code_lr}])  # fmt: skip
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr_final)
    batch_size = min(config.batch_size, len(points))
    history: History = {}

    model.train()
    with flush_denormals():
        for step in tqdm(range(config.steps), desc="DeepSDF", disable=not progress):
            index = torch.randint(len(points), (batch_size,), generator=generator, device=device)
            ids = shape_ids[index]
            codes = model.codes(ids)
            l1 = clamped_l1(model.decoder(points[index], codes), distances[index], config.clamp).mean()
            prior = (prior_weight[ids] * codes.pow(2).sum(dim=-1)).mean()
            loss = l1 + prior
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            terms = {"loss": loss.item(), "l1": l1.item(), "code_norm": model.codes.weight.norm(dim=-1).mean().item()}
            for name, value in terms.items():
                history.setdefault(name, []).append(value)
            if callback is not None:
                callback(step, model, terms)
    return model.eval(), history


def infer_code(decoder: ImplicitNetwork, samples: PointSamples, config: DeepSDFConfig | None = None,
               seed: int = 0) -> Tensor:  # fmt: skip
    """The code ``z_hat`` [d] of an unseen shape from its signed-distance samples, with the decoder frozen (the
    paper's eq. 10, full batch: every sample in every step). ``seed`` fixes the code's starting point."""
    config = config or DeepSDFConfig()
    points, distances = _check_samples(samples, "samples")
    if decoder.latent_dim != config.latent_dim:
        raise ValueError(f"the decoder takes codes of size {decoder.latent_dim}, config.latent_dim is "
                         f"{config.latent_dim}")  # fmt: skip
    if config.infer_steps < 1:
        raise ValueError(f"infer_steps must be positive, got {config.infer_steps}")
    device = module_device(decoder)
    points, distances = points.to(device, torch.float32), distances.to(device, torch.float32)
    generator = torch.Generator(device=device).manual_seed(seed)
    code = config.code_init_std * torch.randn(config.latent_dim, generator=generator, device=device)
    code.requires_grad_(True)
    prior_weight = 1.0 / (config.code_prior_std**2 * len(points))

    was_training = decoder.training
    requires_grad = [p.requires_grad for p in decoder.parameters()]
    decoder.eval().requires_grad_(False)
    optimizer = torch.optim.Adam([code], lr=config.infer_lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.infer_steps,
                                                          eta_min=config.infer_lr / 100)  # fmt: skip
    try:
        with flush_denormals():
            for _ in range(config.infer_steps):
                loss = clamped_l1(decoder(points, code), distances, config.clamp).mean()
                loss = loss + prior_weight * code.pow(2).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    finally:
        for parameter, flag in zip(decoder.parameters(), requires_grad, strict=True):
            parameter.requires_grad_(flag)
        decoder.train(was_training)
    return code.detach()
