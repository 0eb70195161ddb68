"""Training a radiance field from posed images: NeRF, Fourier-feature NeRF and the hash-grid NeRF.

Each step draws a batch of pixels from the training views, renders their rays (:func:`render_rays`) and lowers
the photometric loss of NeRF (eq. 6), with one network queried at the coarse and, when ``n_importance > 0``, the
fine samples (NeRF trains two networks; sharing one, as mip-NeRF does, halves the cost)::

    L = sum_r || C_hat_c(r) - C(r) ||^2 + || C_hat_f(r) - C(r) ||^2

Rays are cut to the scene's bounding sphere, so samples never fall where nothing is. With an occupancy grid
(Instant-NGP) the network is only queried at samples in occupied cells; the rest have ``sigma = 0``.

Sparse views (RegNeRF, Niemeyer et al. 2022): with few training views the field explains each image with floaters
that no other view sees. ``depth_smoothness > 0`` renders small patches from random *unobserved* cameras on the
same sphere each step and adds ``lambda sum (d_ij - d_i+1,j)^2 + (d_ij - d_i,j+1)^2`` over neighbouring expected
depths, which prefers piecewise smooth geometry. RegNeRF's second term, a normalizing-flow likelihood of the
patches' colours, is not included. ``color_consistency > 0`` is a colour prior instead: the colour seen at a
sample should not change with the viewing direction (:func:`color_consistency_loss`). It answers the failure
that dominates on the library scenes, a visual hull painted with a different colour for each training view.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mpenv.checkpoint import load_config, load_state_dict_checked, load_torch, save_torch
from mpenv.device import get_device, seed_everything
from vision3d.nerf.encodings import OccupancyGrid
from vision3d.nerf.model import RadianceField
from vision3d.nerf.rendering import RenderResult, hierarchical_samples, stratified_samples, volume_render
from vision3d.scenes.cameras import Camera, hemisphere_cameras, pixel_rays, sphere_bounds
from vision3d.scenes.rendering import ViewSet
from vision3d.view_fitting import fitting_run, image_scores, record_evaluation, resume_state

# Trained fields shipped with the package (benchmarks/nerf_assets.py makes them; the learning bars check them).
ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class NeRFConfig:
    """Everything that defines a run; stored as JSON beside the checkpoint."""

    encoding: str = "positional"
    encoding_kwargs: dict = field(default_factory=lambda: {"n_frequencies": 6})
    hidden: int = 128
    depth: int = 4
    color_hidden: int = 64
    steps: int = 3000
    batch_rays: int = 1024
    n_samples: int = 48
    n_importance: int = 0
    lr: float = 5e-3
    final_lr_fraction: float = 0.05
    scene_radius: float = 1.3
    occupancy_grid: bool = False
    grid_resolution: int = 32
    grid_threshold: float = 0.1
    grid_decay: float = 0.6
    grid_every: int = 4
    depth_smoothness: float = 0.0
    distortion: float = 0.0
    color_consistency: float = 0.0
    consistency_rays: int = 128
    patch_size: int = 8
    n_patches: int = 4
    sample_annealing: int = 0
    sample_annealing_start: float = 0.5
    precrop_steps: int = 0
    precrop_fraction: float = 0.5
    frequency_annealing: int = 0
    eval_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0


PRESETS: dict[str, dict] = {
    "nerf": {},
    "fourier-nerf": {"encoding": "fourier", "encoding_kwargs": {"n_features": 128, "scale": 1.0}},
    # 8 levels and twice Instant-NGP's step size: each cut the time to 20 dB by about a quarter against 12 levels at
    # 1e-2 in side-by-side 200-step trials on blocks at 64x64; benchmarks/bench_nerf.py measures the preset.
    "hash-nerf": {
        "encoding": "hash", "hidden": 64, "depth": 1, "lr": 2e-2, "occupancy_grid": True,
        "encoding_kwargs": {"n_levels": 8, "log2_table_size": 15, "n_features": 2, "base_resolution": 4,
                            "max_resolution": 128},
    },
}  # fmt: skip


def preset(name: str, **overrides: object) -> NeRFConfig:
    """The configuration of a named model (``nerf``, ``fourier-nerf``, ``hash-nerf``) with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown NeRF model {name!r}; choose one of {sorted(PRESETS)}")
    config = NeRFConfig(**PRESETS[name])
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"NeRFConfig has no field {key!r}")
        setattr(config, key, value)
    if config.encoding == "hash":
        config.encoding_kwargs = {**config.encoding_kwargs, "bounds": (-config.scene_radius, config.scene_radius)}
    check_config(config)
    return config


def check_config(config: NeRFConfig) -> None:
    """Settings that cannot work together are an error before any work is done."""
    if config.frequency_annealing > 0 and config.encoding != "positional":
        raise ValueError(f"frequency_annealing opens positional-encoding octaves; the {config.encoding!r} encoding "
                         "has none")
    if not 0 < config.precrop_fraction <= 1:
        raise ValueError(f"precrop_fraction must be in (0, 1], got {config.precrop_fraction}")
    if not 0 < config.sample_annealing_start <= 1:
        raise ValueError(f"sample_annealing_start must be in (0, 1], got {config.sample_annealing_start}")
    for name in ("depth_smoothness", "distortion", "color_consistency", "sample_annealing", "frequency_annealing",
                 "precrop_steps"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")


def make_grid(config: NeRFConfig) -> OccupancyGrid:
    """The occupancy grid of a run. Its threshold is a density whose opacity over one cell is below a percent: a
    cell that thin is skipped, and the grid's updates bring it back if the field grows dense there. Instant-NGP's
    decay of 0.95 per update needs thousands of steps to forget the initial density; runs here are shorter."""
    return OccupancyGrid(config.grid_resolution, (-config.scene_radius, config.scene_radius), config.grid_threshold,
                         config.grid_decay)


def build_field(config: NeRFConfig) -> RadianceField:
    return RadianceField(config.encoding, config.encoding_kwargs, hidden=config.hidden, depth=config.depth,
                         color_hidden=config.color_hidden)


def load_field(run_dir: str | Path) -> tuple[NeRFConfig, RadianceField, list[dict[str, float]]]:
    """The config, trained field (eval mode) and history of a run directory, e.g. ``ASSETS / "blocks30_nerf"``;
    weights only (``torch.load(weights_only=True)``), their shapes checked against the config."""
    fields = load_config(run_dir)["nerf"]
    config = NeRFConfig(**{k: v for k, v in fields.items() if k in NeRFConfig.__dataclass_fields__})
    state = load_torch(run_dir, required=("step", "modules", "history"))
    field_ = build_field(config)
    load_state_dict_checked(field_, state["modules"]["field"], f"{run_dir}/checkpoint.pt")
    return config, field_.eval(), state["history"]


def _query(
    field_: RadianceField, points: Tensor, directions: Tensor, grid: OccupancyGrid | None
) -> tuple[Tensor, Tensor]:
    """Density and colour at points [R, S, 3]; with a grid, only the occupied ones are evaluated."""
    if grid is None and isinstance(field_, RadianceField):
        return field_(points, directions[:, None])  # each ray's direction encoded once (model docstring)
    flat_points = points.reshape(-1, 3)
    flat_dirs = directions[:, None].expand_as(points).reshape(-1, 3)
    if grid is None:
        sigma, rgb = field_(flat_points, flat_dirs)
    else:
        keep = grid.mask(flat_points)
        sigma = flat_points.new_zeros(len(flat_points))
        rgb = flat_points.new_zeros(len(flat_points), 3)
        if keep.any():
            sigma_kept, rgb_kept = field_(flat_points[keep], flat_dirs[keep])
            sigma = sigma.index_put((keep.nonzero()[:, 0],), sigma_kept)
            rgb = rgb.index_put((keep.nonzero()[:, 0],), rgb_kept)
    return sigma.reshape(points.shape[:2]), rgb.reshape(*points.shape[:2], 3)


def render_rays(
    field_: RadianceField,
    origins: Tensor,
    directions: Tensor,
    config: NeRFConfig,
    background: Tensor,
    perturb: bool = False,
    generator: torch.Generator | None = None,
    grid: OccupancyGrid | None = None,
    span: float = 1.0,
) -> tuple[RenderResult, RenderResult | None]:
    """The coarse render of rays [R, 3] and, with ``n_importance > 0``, the fine render (else ``None``).

    ``span < 1`` samples only that fraction of each ray's chord through the scene sphere, around its middle (the
    point nearest the centre): RegNeRF's sample-space annealing."""
    near, far = sphere_bounds(origins, directions, config.scene_radius)
    if span < 1.0:
        middle = (near + far) / 2
        near, far = middle + span * (near - middle), middle + span * (far - middle)
    t = stratified_samples(near, far, config.n_samples, perturb=perturb, generator=generator, device=origins.device)
    sigma, rgb = _query(field_, origins[:, None] + t[..., None] * directions[:, None], directions, grid)
    coarse = volume_render(sigma, rgb, t, background=background)
    if config.n_importance == 0:
        return coarse, None
    t_fine = hierarchical_samples(t, coarse.weights.detach(), config.n_importance, deterministic=not perturb,
                                  generator=generator)
    sigma, rgb = _query(field_, origins[:, None] + t_fine[..., None] * directions[:, None], directions, grid)
    return coarse, volume_render(sigma, rgb, t_fine, background=background)


@torch.no_grad()
def render_image(
    field_: RadianceField, camera: Camera, config: NeRFConfig, background: Tensor, chunk: int = 4096,
    grid: OccupancyGrid | None = None,
) -> tuple[Tensor, Tensor]:
    """The field's image [H, W, 3] and expected depth [H, W] through ``camera`` (deterministic samples)."""
    device = next(field_.parameters()).device
    origins, directions = (x.float().to(device) for x in pixel_rays(camera))
    colors, depths = [], []
    for start in range(0, len(origins), chunk):
        coarse, fine = render_rays(field_, origins[start : start + chunk], directions[start : start + chunk],
                                   config, background, grid=grid)
        result = fine if fine is not None else coarse
        colors.append(result.rgb)
        depths.append(result.depth)
    return (torch.cat(colors).reshape(camera.height, camera.width, 3).cpu(),
            torch.cat(depths).reshape(camera.height, camera.width).cpu())


def evaluate(field_: RadianceField, views: ViewSet, config: NeRFConfig, grid: OccupancyGrid | None = None
             ) -> dict[str, float | list[Tensor]]:
    """Mean PSNR and SSIM over ``views`` and the rendered images."""
    background = torch.tensor(views.background, dtype=torch.float32, device=next(field_.parameters()).device)
    images = [render_image(field_, camera, config, background, grid=grid)[0] for camera in views.cameras]
    return {**image_scores(images, views.rgb), "images": images}


def _patch_rays(cameras: list[Camera], size: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Rays of ``n`` random ``size`` x ``size`` pixel patches seen from random cameras of the pool."""
    origins, directions = [], []
    for _ in range(n):
        camera = cameras[int(torch.randint(len(cameras), (1,), generator=generator))]
        top = int(torch.randint(camera.height - size + 1, (1,), generator=generator))
        left = int(torch.randint(camera.width - size + 1, (1,), generator=generator))
        v, u = torch.meshgrid(torch.arange(top, top + size), torch.arange(left, left + size), indexing="ij")
        o, d = pixel_rays(camera, torch.stack([u.reshape(-1), v.reshape(-1)], -1).double() + 0.5)
        origins.append(o)
        directions.append(d)
    return torch.cat(origins).float(), torch.cat(directions).float()


def central_pixels(views: ViewSet, fraction: float) -> Tensor:
    """Indices into ``views.rays()`` of the pixels in each view's central crop, ``fraction`` of its width and height.

    NeRF's code trains its first steps on these for the synthetic scenes: when a small object sits on a large
    empty background, the cheapest first move is to empty the whole field, and a field emptied everywhere can
    stay white (the positional-encoding NeRF does so on the body scene in its first 20 steps)."""
    n_views, height, width = views.rgb.shape[:3]
    rows = ((torch.arange(height) + 0.5 - height / 2).abs() < fraction * height / 2)
    columns = ((torch.arange(width) + 0.5 - width / 2).abs() < fraction * width / 2)
    inside = (rows[:, None] & columns[None, :]).reshape(-1).nonzero()[:, 0]
    return (torch.arange(n_views)[:, None] * height * width + inside[None, :]).reshape(-1)


def annealing(step: int, config: NeRFConfig) -> tuple[float, float]:
    """The sample span and the positional-encoding window at ``step`` (RegNeRF, FreeNeRF; module docstring).

    The span grows linearly from ``sample_annealing_start`` to 1 over ``sample_annealing`` steps; the window opens
    linearly from 0 to ``L`` octaves over ``frequency_annealing`` steps (``L`` throughout when 0)."""
    span = 1.0
    if config.sample_annealing > 0:
        span = min(1.0, config.sample_annealing_start
                   + (1 - config.sample_annealing_start) * step / config.sample_annealing)
    octaves = float(config.encoding_kwargs.get("n_frequencies", 0))
    window = octaves if config.frequency_annealing <= 0 else octaves * min(1.0, step / config.frequency_annealing)
    return span, window


def distortion_loss(result: RenderResult, near: Tensor, far: Tensor) -> Tensor:
    """mip-NeRF 360's distortion loss, mean over rays, on distances normalised to ``s = (t - near) / (far - near)``::

        L = sum_ij w_i w_j |(s_i + s_i+1) / 2 - (s_j + s_j+1) / 2|  +  1/3 sum_i w_i^2 (s_i+1 - s_i)

    with ``w_i`` the weight of the segment ``[s_i, s_i+1]`` (the last one ends at ``far``). It is smallest when each
    ray's weight sits in one short segment, so it removes the semi-transparent haze and the floaters that spread a
    ray's colour over its length."""
    s = ((result.t - near[:, None]) / (far - near)[:, None]).clamp(0, 1)
    edges = torch.cat([s, torch.ones_like(s[:, :1])], dim=-1)
    middles, lengths = (edges[:, 1:] + edges[:, :-1]) / 2, edges[:, 1:] - edges[:, :-1]
    w = result.weights
    between = (w[:, :, None] * w[:, None, :] * (middles[:, :, None] - middles[:, None, :]).abs()).sum((1, 2))
    within = (w.square() * lengths).sum(-1) / 3
    return (between + within).mean()


def depth_smoothness_loss(result: RenderResult, size: int) -> Tensor:
    """RegNeRF's depth smoothness over patches [n * size^2 rays]: squared differences of neighbouring depths.

    The depth is the surface depth ``D_hat / A_hat`` and each pair counts in proportion to both pixels' opacity,
    so an object's silhouette against the empty background (a jump the scene really has) is not smoothed away;
    RegNeRF's scenes have no empty background."""
    opacity = result.opacity.reshape(-1, size, size)
    depth = (result.depth / result.opacity.clamp_min(1e-3)).reshape(-1, size, size)
    rows = opacity[:, 1:] * opacity[:, :-1] * (depth[:, 1:] - depth[:, :-1]) ** 2
    columns = opacity[:, :, 1:] * opacity[:, :, :-1] * (depth[:, :, 1:] - depth[:, :, :-1]) ** 2
    return rows.mean() + columns.mean()


def color_consistency_loss(field_: RadianceField, points: Tensor, weights: Tensor, generator: torch.Generator
                           ) -> Tensor:
    """How much the colour at the samples [R, S, 3] of rendered rays changes with the viewing direction::

        L = 1/R sum_r sum_i w_ri || c(x_ri, d_1) - c(x_ri, d_2) ||^2,   d_1, d_2 uniform on the sphere

    with the rays' (detached) weights ``w``, so only what the rays see counts. With few views a field can paint
    each training image on the visual hull with a different view-dependent colour (NeRF++'s shape-radiance
    ambiguity) instead of finding the geometry; this prior makes that costly, and leaves real view dependence to
    be paid for by the photometric loss."""
    features = field_.features(points.reshape(-1, 3))
    directions = F.normalize(torch.randn(2, len(features), 3, generator=generator).to(points), dim=-1)
    difference = field_.color(features, directions[0]) - field_.color(features, directions[1])
    return (weights.reshape(-1) * difference.square().sum(-1)).sum() / len(points)


@dataclass
class NeRFRun:
    field: RadianceField
    config: NeRFConfig
    grid: OccupancyGrid | None
    history: list[dict[str, float]]


def train_nerf(
    train: ViewSet,
    test: ViewSet,
    config: NeRFConfig,
    run_dir: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    progress: bool | None = False,
    resume: bool = False,
    run_config: dict | None = None,
) -> NeRFRun:
    """Fit a radiance field to ``train``; every ``eval_every`` steps measure PSNR/SSIM on ``test``.

    ``history`` holds ``step``, ``train_seconds`` (wall time spent in training steps, evaluations excluded),
    ``psnr`` and ``ssim``. With ``run_dir`` the run writes TensorBoard events, ``config.json`` and a checkpoint
    every ``checkpoint_every`` steps and on Ctrl-C; ``resume=True`` continues from that checkpoint. ``run_config``
    is what ``config.json`` records (default: the model and this config)."""
    check_config(config)
    device = get_device(device)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    field_ = build_field(config).to(device)
    grid = make_grid(config).to(device) if config.occupancy_grid else None
    optimizer = torch.optim.Adam(field_.parameters(), lr=config.lr, eps=1e-15 if config.encoding == "hash" else 1e-8)
    gamma = config.final_lr_fraction ** (1.0 / max(config.steps, 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    origins, directions = train.rays()
    colors = train.rgb.reshape(-1, 3)
    crop = central_pixels(train, config.precrop_fraction)
    background = torch.tensor(train.background, dtype=torch.float32, device=device)
    virtual_cameras = hemisphere_cameras(64, radius=float(train.cameras[0].center.norm()), seed=config.seed + 1,
                                         width=train.cameras[0].width, height=train.cameras[0].height)
    start_step, train_seconds, history = 0, 0.0, []
    if resume:
        saved = resume_state(run_dir, required=("modules", "optimizer", "scheduler", "generator"))
        load_state_dict_checked(field_, saved.state["modules"]["field"], saved.source)
        if grid is not None:
            load_state_dict_checked(grid, saved.state["modules"].get("grid", {}), saved.source)
        load_state_dict_checked(optimizer, saved.state["optimizer"], saved.source)
        load_state_dict_checked(scheduler, saved.state["scheduler"], saved.source)
        generator.set_state(saved.state["generator"])
        start_step, history, train_seconds = saved.step, saved.history, saved.train_seconds

    def save(step: int) -> None:
        if run_dir is not None:
            modules = {"field": field_.state_dict(), **({"grid": grid.state_dict()} if grid is not None else {})}
            save_torch(run_dir, {"step": step, "modules": modules, "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "generator": generator_state,
                                 "history": history, "config": asdict(config)})

    def log_evaluation(step: int, logger) -> None:
        field_.eval()
        result = evaluate(field_, test, config, grid)
        field_.train()
        record_evaluation(history, logger, step, train_seconds, result,
                          **({"occupied": grid.occupied_fraction} if grid is not None else {}))

    run_config = run_config or {"model": "nerf", "nerf": asdict(config)}
    # The last step whose update was applied and the random state after it: what a checkpoint on Ctrl-C records.
    completed, generator_state = start_step, generator.get_state()
    with fitting_run(run_dir, run_config, config.steps, progress, lambda: save(completed)) as logger:
        for step in range(start_step + 1, config.steps + 1):
            began = time.perf_counter()
            if grid is not None and (step - 1) % config.grid_every == 0:
                grid.update(field_.density, generator=generator)
            span, window = annealing(step, config)
            if config.frequency_annealing > 0:
                field_.position_encoding.window.fill_(window)
            if step <= config.precrop_steps:
                batch = crop[torch.randint(len(crop), (config.batch_rays,), generator=generator)]
            else:
                batch = torch.randint(len(origins), (config.batch_rays,), generator=generator)
            coarse, fine = render_rays(field_, origins[batch].to(device), directions[batch].to(device), config,
                                       background, perturb=True, generator=generator, grid=grid, span=span)
            target = colors[batch].to(device)
            loss = F.mse_loss(coarse.rgb, target) + (F.mse_loss(fine.rgb, target) if fine is not None else 0.0)
            if config.distortion > 0:
                near, far = sphere_bounds(origins[batch].to(device), directions[batch].to(device), config.scene_radius)
                loss = loss + config.distortion * distortion_loss(fine if fine is not None else coarse, near, far)
            if config.color_consistency > 0:
                seen = fine if fine is not None else coarse
                rays = torch.randperm(config.batch_rays, generator=generator)[: config.consistency_rays].to(device)
                points = origins[batch][rays, None].to(device) + seen.t[rays, :, None] * \
                    directions[batch][rays, None].to(device)
                loss = loss + config.color_consistency * color_consistency_loss(
                    field_, points.detach(), seen.weights[rays].detach(), generator)
            if config.depth_smoothness > 0:
                patch_o, patch_d = _patch_rays(virtual_cameras, config.patch_size, config.n_patches, generator)
                patch, _ = render_rays(field_, patch_o.to(device), patch_d.to(device), config, background,
                                       perturb=True, generator=generator, grid=grid, span=span)
                loss = loss + config.depth_smoothness * depth_smoothness_loss(patch, config.patch_size)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"NeRF loss became {loss.item()} at step {step}; the last checkpoint is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            train_seconds += time.perf_counter() - began
            completed, generator_state = step, generator.get_state()
            if logger is not None and step % 50 == 0:
                logger.log("losses/photometric", loss.item(), step)
                logger.log("charts/psnr_train_batch", -10 * math.log10(max(F.mse_loss(
                    (fine if fine is not None else coarse).rgb, target).item(), 1e-12)), step)
                if grid is not None:
                    logger.log("charts/occupied_fraction", grid.occupied_fraction, step)
            if step % config.eval_every == 0 or step == config.steps:
                log_evaluation(step, logger)
            if step % config.checkpoint_every == 0 or step == config.steps:
                save(step)
    return NeRFRun(field_, config, grid, history)
