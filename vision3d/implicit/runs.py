"""Run directories for the implicit-surface models (``mpenv-3d train igr|occupancy|dvr``): data from an exact
scene, the fit, a checkpoint with its JSON config, and the surface report against the exact shape.

The report meshes the learned surface by marching cubes and compares it with the scene's exact surface:
Chamfer-L1, normal consistency and F-score at 1% of the scene's size on 50k samples each, and the volumetric IoU
of inside/outside on 100k uniform points.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch import nn

from mpenv.checkpoint import load_config, load_state_dict_checked, load_torch, save_torch
from mpenv.device import module_device
from mpenv.logger import RunLogger
from vision3d.implicit.dvr import DVRConfig, OccupancyTextureField, fit_dvr
from vision3d.implicit.igr import IGRConfig, fit_igr
from vision3d.implicit.meshing import Mesh, extract_mesh
from vision3d.implicit.metrics import chamfer_distance, f_score, normal_consistency, volumetric_iou
from vision3d.implicit.networks import ImplicitNetwork
from vision3d.implicit.occupancy import OccupancyConfig, OccupancyNetwork, fit_occupancy
from vision3d.scenes.library import make_scene, scene_views
from vision3d.scenes.mesh import sample_mesh_surface
from vision3d.scenes.samplers import occupancy_samples, surface_samples, uniform_box_points

IMPLICIT_MODELS = ("igr", "occupancy", "dvr")
CONFIGS = {"igr": IGRConfig, "occupancy": OccupancyConfig, "dvr": DVRConfig}


def config_from_json(model: str, values: dict) -> object:
    cls = CONFIGS[model]
    known = {f.name: f for f in fields(cls)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
    return cls(**kwargs)


def build_network(model: str, config: object) -> nn.Module:
    if model == "igr":
        return ImplicitNetwork(config.hidden, skip=config.skip, radius=config.init_radius)
    if model == "occupancy":
        return OccupancyNetwork(1, config.hidden, config.code_dim, config.skip)
    return OccupancyTextureField(config.hidden, config.depth, config.n_frequencies)


def surface_function(model: str, network: nn.Module) -> tuple[callable, float, str]:
    """The function whose level set is the surface, the level, and which side is inside."""
    if model == "igr":
        return network, 0.0, "negative"
    if model == "occupancy":
        return network, 0.0, "positive"
    return network.occupancy_logit, 0.0, "positive"


@torch.no_grad()
def surface_report(model: str, network: nn.Module, scene_name: str, resolution: int = 96) -> tuple[dict, Mesh]:
    """Chamfer-L1, normal consistency, F-score and IoU of the learned surface against the exact shape."""
    shape = make_scene(scene_name).shape
    fn, level, inside = surface_function(model, network)
    low, high = shape.bounds()
    margin = 0.1 * float((high - low).max())
    bounds = ((low - margin).tolist(), (high + margin).tolist())
    device = module_device(network)
    mesh = extract_mesh(fn, bounds=bounds, resolution=resolution, level=level, inside=inside, device=device)
    predicted, predicted_normals = sample_mesh_surface(mesh.vertices, mesh.faces, 50_000, seed=0)
    exact = surface_samples(shape, 50_000, seed=1)
    size = float((high - low).max())
    chamfer = chamfer_distance(predicted, exact.points)
    points = uniform_box_points(shape, 100_000, torch.Generator().manual_seed(2))
    values = fn(points.float().to(device)).cpu()
    learned_inside = values > level if inside == "positive" else values < level
    report = {
        "chamfer_l1": chamfer.l1,
        "normal_consistency": normal_consistency(predicted, predicted_normals, exact.points, exact.normals),
        "f_score_1pct": f_score(predicted, exact.points, 0.01 * size).f,
        "iou": volumetric_iou(learned_inside, shape.occupancy(points)),
    }
    return report, mesh


def train_implicit(model: str, scene_name: str, run_dir: Path, config: object, data: dict, seed: int,
                   progress: bool | None) -> dict:
    """Fit ``model`` on data drawn from the exact scene, save it, and return its surface report."""
    shape = make_scene(scene_name).shape
    if model == "igr":
        cloud = surface_samples(shape, data["points"], seed=seed)
        network, history = fit_igr(cloud.points, cloud.normals if data.get("normals") else None, config, seed=seed,
                                   device="cpu", progress=bool(progress))
    elif model == "occupancy":
        samples = occupancy_samples(shape, data["points"], seed=seed)
        network, history = fit_occupancy(samples.points, samples.values, config, seed=seed, device="cpu",
                                         progress=bool(progress))
    else:
        train, _ = scene_views(scene_name, data["views"], 1, data["resolution"], seed)
        network, history = fit_dvr(train, config, seed=seed, progress=bool(progress))
    run_config = {"model": model, "data": {"scene": scene_name, **data}, model: asdict(config), "seed": seed}
    with RunLogger(run_dir, run_config, progress=False) as logger:
        for key, values in history.items():
            for step, value in enumerate(values[:: max(len(values) // 500, 1)]):
                logger.log(f"losses/{key}" if "loss" in key or key == "total" else f"charts/{key}", value,
                           step * max(len(values) // 500, 1))
        save_torch(run_dir, {"step": len(next(iter(history.values()))), "modules": {"network": network.state_dict()}})
        report, _ = surface_report(model, network, scene_name)
        for key, value in report.items():
            logger.log(f"eval/{key}", value, len(next(iter(history.values()))))
    return report


def load_implicit(run_dir: str | Path) -> tuple[dict, nn.Module]:
    """The config and network of an implicit-model run (weights only, shapes checked)."""
    config = load_config(run_dir)
    model = config.get("model")
    if model not in IMPLICIT_MODELS:
        raise ValueError(f"{run_dir}: not an implicit-surface run (model {model!r})")
    network = build_network(model, config_from_json(model, config[model]))
    state = load_torch(run_dir)
    load_state_dict_checked(network, state["modules"]["network"], f"{run_dir}/checkpoint.pt")
    return config, network.eval()
