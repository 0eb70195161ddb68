"""One-shot device check of mpenv, agents, generative and vision3d on an accelerator (a CUDA GPU).

Every check runs inside its own try/except (and under a per-check time limit): it is recorded as ``pass``,
``fail`` (with the exception, the last lines of its traceback and the deepest frame inside this repository) or
``skipped`` (``skipped: <module> missing`` when an optional package such as gymnasium is not installed), and the
script goes on with the next one. It never exits with an error because a check failed; the JSON and the table
at the end say what happened.

Checks (``--only`` takes their names or shell patterns such as ``eq_*``):

1. ``device_layer`` -- :mod:`mpenv.device`: ``get_device("auto")`` / the requested device, ``seed_everything``
   repeats random streams on the device, ``to_device`` moves batches and modules; the GPU's name.
2. ``eq_*`` -- the same seeded inputs computed on the CPU and on the device, max abs difference of outputs and
   gradients; pass if ``diff <= 1e-4 * max(1, max |CPU value|)`` (float32): volume rendering and NeRF's samplers,
   the three NeRF encodings (forward and gradient w.r.t. inputs and parameters), the occupancy grid, the body
   model (vertices, joints, gradients w.r.t. pose and shape), and an exact scene render given rays on the device.
3. Short training on the device, with wall time, steps/s and a final metric, and (unless ``--no-cpu-baseline``
   or the device is the CPU) a few steps of the same run on the CPU for a speed ratio: NeRF (``hash-nerf`` and
   ``nerf`` presets through ``train_nerf``, held-out PSNR), a hand-written NeRF loop whose random generator
   lives on the device (tells a generator bug in ``train_nerf`` from one in the renderer), IGR and its surface
   report, DVR, a VAE, MADE (and its seeded sampling), a RealNVP flow, a DDPM, a GAN, and DQN, A2C and
   REINFORCE on CartPole (gymnasium).

Every API that takes a ``device`` is given the device of ``--device``: the point is to find code that creates
tensors (or random generators) on the CPU while its inputs live on the GPU. The library is never patched here.

Run on a GPU machine from the repository root (the repo need not be pip-installed)::

    PYTHONPATH=. python3 benchmarks/cuda_check.py --device cuda --out $OUT/cuda_check.json

and as a CPU dry run (small step counts; on the CPU the ``eq_*`` checks compare the CPU with itself)::

    python benchmarks/cuda_check.py --device cpu --quick

The run stops starting checks after ``--budget-s`` (170 s) and interrupts a check after ``--check-timeout-s``
(75 s); the JSON is rewritten after every check, so a run killed from outside still leaves its results.
``--threads N`` sets torch's CPU threads (``--quick`` uses 1: on a small, busy machine torch's OpenMP threads
spin against other processes and a dry run takes minutes instead of seconds).
``--simulate-missing gymnasium,trimesh,mujoco,sklearn`` hides packages, to try the skips on a full install.
``import mpenv`` registers gymnasium environments and so needs gymnasium; without it the ``mpenv`` package is
bootstrapped here without its ``__init__`` (noted in the JSON) so that the torch parts can still be checked.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fnmatch
import json
import math
import os
import platform
import re
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TOLERANCE = 1e-4  # float32, relative to max(1, largest CPU value)
OPTIONAL_MODULES = ("gymnasium", "trimesh", "mujoco", "stable_baselines3", "sklearn", "imageio", "skimage", "scipy",
                    "tensorboard", "pygame")  # fmt: skip
PACKAGES = ("mpenv", "agents", "generative", "vision3d")
MISMATCH = re.compile(r"same device|device type|two devices|different devices|to be on (the )?(\w+ )?device",
                      re.IGNORECASE)  # how torch words a tensor or a generator on the wrong device


# --------------------------------------------------------------------------------------------------- plumbing


class CheckFailed(Exception):
    """A check that ran but missed its bar; ``figures`` are still reported."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


class CheckSkipped(Exception):
    """A check that cannot run here (a missing package, a missing prerequisite)."""


class CheckTimeout(Exception):
    pass


@dataclass
class Result:
    name: str
    status: str  # "pass", "fail" or "skipped"
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why it failed or was skipped
    location: str = ""  # deepest frame of the traceback inside this repository (not this script)
    repo_frames: list[str] = field(default_factory=list)  # every frame of the traceback in the repository
    device_mismatch: bool = False  # the error reads like a tensor/generator on the wrong device
    traceback_tail: list[str] = field(default_factory=list)
    what: str = ""  # what the check measures


@dataclass
class Context:
    """What the checks share: the device, the size of the run and results worth reusing."""

    device: torch.device
    requested: str  # the --device string
    quick: bool
    cpu_baseline: bool
    cache: dict[str, Any] = field(default_factory=dict)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def compare_with_cpu(self) -> bool:
        """Whether a CPU run for a speed ratio is wanted (not when the device is the CPU itself)."""
        return self.cpu_baseline and self.device.type != "cpu"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed(device: torch.device, out: dict[str, float], key: str = "seconds") -> Iterator[None]:
    """Wall time of the block, the device's queue drained at both ends."""
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    out[key] = time.perf_counter() - start


def missing_module(err: BaseException) -> str | None:
    """The optional package whose absence raised ``err``, if that is what happened."""
    if isinstance(err, ModuleNotFoundError) and err.name:
        root = err.name.split(".")[0]
        if root in OPTIONAL_MODULES:
            return root
    return None


def repo_frames(err: BaseException) -> list[str]:
    """``path:line in function: code`` of every traceback frame in the repository's packages, outermost first."""
    found = []
    for frame in traceback.extract_tb(err.__traceback__):
        try:
            relative = Path(frame.filename).resolve().relative_to(REPO)
        except ValueError:
            continue
        if relative.parts and relative.parts[0] in PACKAGES:
            found.append(f"{relative}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}")
    return found


def describe_failure(name: str, seconds: float, err: BaseException, figures: dict[str, Any]) -> Result:
    """A failed check; a :class:`CheckFailed` raised ``from`` a library error is located by that error."""
    source = err.__cause__ if isinstance(err, CheckFailed) and err.__cause__ is not None else err
    lines = traceback.format_exception(type(source), source, source.__traceback__)
    tail = "".join(lines).rstrip().splitlines()[-8:]
    message = f"{type(err).__name__}: {err}".strip()
    frames = repo_frames(source)
    return Result(name, "fail", seconds, figures, message[:2000], frames[-1] if frames else "", frames,
                  bool(MISMATCH.search(message)), tail)  # fmt: skip


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in the block after ``seconds`` (SIGALRM; a no-op where there is none)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CheckTimeout(f"the check ran past its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_check(name: str, check: Callable[[Context], dict[str, Any]], ctx: Context, limit_s: float) -> Result:
    """One check, whatever happens inside it; torch's thread count is restored afterwards."""
    threads = torch.get_num_threads()
    start = time.perf_counter()
    figures: dict[str, Any] = {}
    try:
        with time_limit(limit_s):
            figures = check(ctx)
        return Result(name, "pass", time.perf_counter() - start, figures)
    except CheckSkipped as err:
        return Result(name, "skipped", time.perf_counter() - start, reason=f"skipped: {err}")
    except CheckFailed as err:
        return describe_failure(name, time.perf_counter() - start, err, err.figures)
    except Exception as err:  # a check must never stop the script
        module = missing_module(err)
        if module is not None:
            return Result(name, "skipped", time.perf_counter() - start, reason=f"skipped: {module} missing")
        return describe_failure(name, time.perf_counter() - start, err, figures)
    finally:
        torch.set_num_threads(threads)
        with contextlib.suppress(Exception):
            synchronize(ctx.device)


def require(module: str) -> None:
    """Skip the calling check when ``module`` cannot be imported."""
    try:
        __import__(module)
    except ImportError as err:
        raise CheckSkipped(f"{module} missing") from err


def max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """``(max |a - b|, max(1, max |a|))`` over finite entries, both moved to the CPU in float64."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    if a.shape != b.shape:
        raise CheckFailed(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}", {})
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return math.inf, 1.0
    if not finite.any():
        return 0.0, 1.0
    return float((a - b)[finite].abs().max()), max(1.0, float(a[finite].abs().max()))


def compare(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Max abs differences of named CPU/device pairs; raises :class:`CheckFailed` past the tolerance."""
    figures: dict[str, Any] = {"tolerance": tolerance}
    worst = []
    for key, (cpu_value, device_value) in pairs.items():
        diff, scale = max_diff(cpu_value, device_value)
        figures[f"diff_{key}"] = diff
        if not diff <= tolerance * scale:
            worst.append(f"{key} differs by {diff:.3g} (allowed {tolerance * scale:.3g})")
    if worst:
        raise CheckFailed("CPU and device disagree: " + "; ".join(worst), figures)
    figures["max_diff"] = max(v for k, v in figures.items() if k.startswith("diff_"))
    return figures


def steps_per_second(steps: int, seconds: float) -> float:
    return steps / seconds if seconds > 0 else math.inf


def speed_figures(figures: dict[str, Any], device_rate: float, cpu_rate: float | None,
                  cpu_threads: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Steps per second on the device and, when measured, on the CPU (with its torch thread count)."""
    figures["steps_per_s"] = device_rate
    if cpu_rate is not None:
        figures["cpu_steps_per_s"] = cpu_rate
        figures["cpu_threads"] = cpu_threads or torch.get_num_threads()
        figures["speedup_vs_cpu"] = device_rate / cpu_rate if cpu_rate > 0 else math.inf
    return figures


def module_on(module: torch.nn.Module, device: torch.device, what: str) -> None:
    """Fail when a trained module does not live on the device it was asked for."""
    from mpenv.device import module_device

    found = module_device(module)
    if found.type != device.type:
        raise CheckFailed(f"{what} is on {found}, not on the requested {device}", {})


# ------------------------------------------------------------------------------------------ 1. device layer


def check_device_layer(ctx: Context) -> dict[str, Any]:
    from mpenv.device import ENV_VAR, get_device, module_device, seed_everything, to_device

    device = get_device(ctx.requested)  # raises (and so fails the check) when the requested device is missing
    if device != ctx.device:
        raise CheckFailed(f"get_device({ctx.requested!r}) gave {device}, the checks run on {ctx.device}", {})
    figures: dict[str, Any] = {"device": str(device), "auto": str(get_device("auto")), "torch": torch.__version__,
                               "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        figures.update(gpu=torch.cuda.get_device_name(index), capability=f"{properties.major}.{properties.minor}",
                       memory_gib=round(properties.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
        env_override = os.environ.get(ENV_VAR, "").strip()
        if not env_override and get_device("auto").type != "cuda":
            raise CheckFailed(f"get_device('auto') gave {get_device('auto')} on a CUDA machine", figures)
        figures["env_override"] = env_override or None
    problems = []
    rng_a = seed_everything(123)
    first = (torch.rand(4, device=device), torch.rand(4), float(rng_a.random()))
    rng_b = seed_everything(123)
    second = (torch.rand(4, device=device), torch.rand(4), float(rng_b.random()))
    if not (torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]):
        problems.append("seed_everything does not repeat the device/CPU/numpy streams")
    batch = to_device({"obs": np.ones((2, 3), dtype=np.float32), "act": torch.zeros(2), "n": 3}, device)
    if batch["obs"].device.type != device.type or batch["act"].device.type != device.type or batch["n"] != 3:
        problems.append(f"to_device left a batch off {device}")
    net = to_device(torch.nn.Linear(3, 2), device)
    if module_device(net).type != device.type:
        problems.append(f"to_device left a module on {module_device(net)}")
    if problems:
        raise CheckFailed("; ".join(problems), figures)
    return figures


# --------------------------------------------------------------------------------- 2. CPU-vs-device equality


def random_render_inputs(n_rays: int, n_samples: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    t = torch.sort(1.0 + 3.0 * torch.rand(n_rays, n_samples, generator=gen), dim=-1).values
    return {"sigma": 3.0 * torch.rand(n_rays, n_samples, generator=gen),
            "color": torch.rand(n_rays, n_samples, 3, generator=gen), "t": t,
            "background": torch.rand(3, generator=gen), "w_rgb": torch.randn(n_rays, 3, generator=gen),
            "w_depth": torch.randn(n_rays, generator=gen)}  # fmt: skip


def render_outputs(inputs: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Volume render, its gradients, and NeRF's deterministic samplers, all on ``device``."""
    from vision3d.nerf.rendering import hierarchical_samples, stratified_samples, volume_render

    x = {key: value.detach().to(device) for key, value in inputs.items()}
    sigma, color = x["sigma"].requires_grad_(True), x["color"].requires_grad_(True)
    result = volume_render(sigma, color, x["t"], background=x["background"])
    loss = (result.rgb * x["w_rgb"]).sum() + (result.depth * x["w_depth"]).sum()
    grad_sigma, grad_color = torch.autograd.grad(loss, (sigma, color))
    n_rays, n_samples = sigma.shape
    near = torch.full((n_rays,), 1.0, device=device)
    t_coarse = stratified_samples(near, near + 3.0, n_samples, perturb=False, device=device)
    t_fine = hierarchical_samples(t_coarse, result.weights.detach(), 16, deterministic=True)
    return {"rgb": result.rgb, "depth": result.depth, "opacity": result.opacity, "weights": result.weights,
            "grad_sigma": grad_sigma, "grad_color": grad_color, "stratified": t_coarse, "hierarchical": t_fine}


def check_eq_volume_render(ctx: Context) -> dict[str, Any]:
    inputs = random_render_inputs(ctx.n(4096, 512), 64)
    cpu, dev = render_outputs(inputs, torch.device("cpu")), render_outputs(inputs, ctx.device)
    return compare({key: (cpu[key], dev[key]) for key in cpu})


def encoding_outputs(encoding: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor,
                     device: torch.device) -> dict[str, torch.Tensor]:  # fmt: skip
    """Features and the gradients of ``sum(features * weights)`` w.r.t. the points and every parameter."""
    module = copy.deepcopy(encoding).to(device)
    points = x.detach().to(device).requires_grad_(True)
    features = module(points)
    params = dict(module.named_parameters())
    grads = torch.autograd.grad((features * weights.to(device)).sum(), (points, *params.values()))
    named_grads = {f"grad_{key}": grad for key, grad in zip(params, grads[1:], strict=True)}
    return {"features": features, "grad_x": grads[0], **named_grads}


def encoding_check(ctx: Context, make: Callable[[], torch.nn.Module], low: float = -1.0) -> dict[str, Any]:
    torch.manual_seed(0)
    encoding = make()
    gen = torch.Generator().manual_seed(1)
    if hasattr(encoding, "table"):  # Instant-NGP starts at +-1e-4; larger features make a sharper test
        with torch.no_grad():
            encoding.table.copy_(0.1 * torch.randn(encoding.table.shape, generator=gen))
    x = low + (1.0 - low) * torch.rand(ctx.n(8192, 1024), encoding.in_dim, generator=gen)
    weights = torch.randn(encoding.out_dim, generator=gen)
    cpu = encoding_outputs(encoding, x, weights, torch.device("cpu"))
    dev = encoding_outputs(encoding, x, weights, ctx.device)
    figures = compare({key: (cpu[key], dev[key]) for key in cpu})
    figures["out_dim"] = encoding.out_dim
    return figures


def check_eq_positional_encoding(ctx: Context) -> dict[str, Any]:
    from vision3d.nerf.encodings import PositionalEncoding

    return encoding_check(ctx, lambda: PositionalEncoding(3, n_frequencies=10))


def check_eq_fourier_features(ctx: Context) -> dict[str, Any]:
    from vision3d.nerf.encodings import FourierFeatures

    return encoding_check(ctx, lambda: FourierFeatures(3, n_features=256, scale=10.0), low=0.0)


def check_eq_hash_grid(ctx: Context) -> dict[str, Any]:
    from vision3d.nerf.encodings import HashGrid

    # The hash-nerf preset's grid: dense coarse levels and hashed fine ones.
    return encoding_check(ctx, lambda: HashGrid(3, n_levels=12, log2_table_size=15, n_features=2, base_resolution=4,
                                                max_resolution=128))  # fmt: skip


def occupancy_outputs(device: torch.device, points: torch.Tensor) -> dict[str, torch.Tensor]:
    from vision3d.nerf.encodings import OccupancyGrid

    grid = OccupancyGrid(32, (-1.3, 1.3), threshold=0.1, decay=0.6).to(device)

    def density(p: torch.Tensor) -> torch.Tensor:
        return F.relu(10.0 * (0.8 - p.norm(dim=-1)))

    grid.update(density, jitter=False)
    grid.update(density, jitter=False, chunk_size=4096)
    return {"density": grid.density, "occupied": grid.occupied.float(), "mask": grid.mask(points.to(device)).float()}


def check_eq_occupancy_grid(ctx: Context) -> dict[str, Any]:
    points = 2.8 * torch.rand(ctx.n(20000, 2000), 3, generator=torch.Generator().manual_seed(0)) - 1.4
    cpu, dev = occupancy_outputs(torch.device("cpu"), points), occupancy_outputs(ctx.device, points)
    figures = compare({key: (cpu[key], dev[key]) for key in cpu})
    figures["occupied_fraction"] = float(cpu["occupied"].mean())
    return figures


def body_outputs(device: torch.device, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from vision3d.body.model import BodyModel

    model = BodyModel.default(dtype=torch.float32, device=device)
    x = {key: value.detach().to(device) for key, value in inputs.items() if key != "w"}
    x["body_pose"].requires_grad_(True)
    x["betas"].requires_grad_(True)
    out = model(**x)
    loss = (out.vertices * inputs["w"].to(device)).sum() + out.joints.square().sum()
    grad_pose, grad_betas = torch.autograd.grad(loss, (x["body_pose"], x["betas"]))
    return {"vertices": out.vertices, "joints": out.joints, "grad_body_pose": grad_pose, "grad_betas": grad_betas}


def check_eq_body_model(ctx: Context) -> dict[str, Any]:
    from vision3d.body.model import BodyModel

    reference = BodyModel.default(dtype=torch.float32, device="cpu")
    batch, gen = ctx.n(64, 8), torch.Generator().manual_seed(0)
    inputs = {"betas": torch.randn(batch, reference.num_betas, generator=gen),
              "global_orient": 0.5 * torch.randn(batch, 3, generator=gen),
              "body_pose": 0.4 * torch.randn(batch, 69, generator=gen), "transl": torch.randn(batch, 3, generator=gen),
              "w": torch.randn(batch, reference.num_vertices, 3, generator=gen)}  # fmt: skip
    cpu, dev = body_outputs(torch.device("cpu"), inputs), body_outputs(ctx.device, inputs)
    figures = compare({key: (cpu[key], dev[key]) for key in cpu})
    figures["vertices"] = reference.num_vertices
    return figures


def check_eq_scene_render(ctx: Context) -> dict[str, Any]:
    """``render(scene, camera)`` takes no device; the shapes are device-generic, so the exact renderer's
    ``render_rays`` is given the camera's rays on the device and compared with the CPU render."""
    from vision3d.scenes.cameras import orbit_cameras, pixel_rays
    from vision3d.scenes.library import make_scene
    from vision3d.scenes.rendering import render, render_rays

    scene = make_scene("blocks", specular=0.3)
    size = ctx.n(48, 24)
    camera = orbit_cameras(1, width=size, height=size, start_degrees=40)[0]
    view = render(scene, camera)
    origins, directions = pixel_rays(camera)
    rgb, depth, normal, mask = render_rays(scene, origins.to(ctx.device), directions.to(ctx.device))
    hit = view.mask.reshape(-1)
    figures = compare({"rgb": (view.rgb.reshape(-1, 3), rgb), "normal": (view.normal.reshape(-1, 3), normal),
                       "mask": (view.mask.reshape(-1).double(), mask.double()),
                       "depth_on_surface": (view.depth.reshape(-1)[hit], depth.cpu()[hit])})  # fmt: skip
    figures["pixels_on_surface"] = int(hit.sum())
    figures["note"] = "render() has no device argument: render_rays() given device rays"
    return figures


# ------------------------------------------------------------------------------------------ 3. training: NeRF


def nerf_views(ctx: Context) -> tuple[Any, Any]:
    """The blocks scene's training and held-out views (cached; rendered exactly on the CPU)."""
    if "nerf_views" not in ctx.cache:
        from vision3d.scenes.library import scene_views

        start = time.perf_counter()
        ctx.cache["nerf_views"] = scene_views("blocks", ctx.n(16, 8), ctx.n(3, 1), ctx.n(64, 32), seed=0)
        ctx.cache["nerf_views_seconds"] = time.perf_counter() - start
    return ctx.cache["nerf_views"]


def nerf_config(ctx: Context, name: str, steps: int, **overrides: Any) -> Any:
    from vision3d.nerf.train import preset

    return preset(name, steps=steps, eval_every=steps, checkpoint_every=steps, batch_rays=ctx.n(1024, 256),
                  **overrides)  # fmt: skip


def nerf_training(ctx: Context, name: str) -> dict[str, Any]:
    from vision3d.nerf.train import train_nerf

    train, test = nerf_views(ctx)
    steps = ctx.n(300, 10)
    figures: dict[str, Any] = {"steps": steps, "resolution": train.cameras[0].width, "views": len(train),
                               "batch_rays": ctx.n(1024, 256)}  # fmt: skip
    wall: dict[str, float] = {}
    with timed(ctx.device, wall):
        run = train_nerf(train, test, nerf_config(ctx, name, steps), device=ctx.device)
    module_on(run.field, ctx.device, "the trained field")
    last = run.history[-1]
    figures.update(psnr=last["psnr"], ssim=last["ssim"], train_seconds=last["train_seconds"], wall_s=wall["seconds"])
    if "occupied" in last:
        figures["occupied_fraction"] = last["occupied"]
    cpu_rate = None
    if ctx.compare_with_cpu:
        cpu_steps = ctx.n(10, 3)
        cpu_run = train_nerf(train, test.subset([0]), nerf_config(ctx, name, cpu_steps), device="cpu")
        cpu_rate = steps_per_second(cpu_steps, cpu_run.history[-1]["train_seconds"])
    return speed_figures(figures, steps_per_second(steps, last["train_seconds"]), cpu_rate)


def check_nerf_hash(ctx: Context) -> dict[str, Any]:
    return nerf_training(ctx, "hash-nerf")


def check_nerf_positional(ctx: Context) -> dict[str, Any]:
    return nerf_training(ctx, "nerf")


def check_nerf_loop_device_generator(ctx: Context) -> dict[str, Any]:
    """``train_nerf``'s step written out with the library's pieces, its random generator on the device, and
    hierarchical sampling on: if this passes where ``train_nerf`` fails, the fault is in ``train_nerf``'s set-up."""
    from mpenv.device import seed_everything
    from vision3d.nerf.train import build_field, evaluate, make_grid, render_rays

    train, test = nerf_views(ctx)
    steps = ctx.n(200, 10)
    config = nerf_config(ctx, "hash-nerf", steps, n_importance=16)
    device = ctx.device
    seed_everything(0)
    generator = torch.Generator(device=device).manual_seed(0)
    field_, grid = build_field(config).to(device), make_grid(config).to(device)
    optimizer = torch.optim.Adam(field_.parameters(), lr=config.lr, eps=1e-15)
    origins, directions = (x.to(device) for x in train.rays())
    colors = train.rgb.reshape(-1, 3).to(device)
    background = torch.tensor(train.background, dtype=torch.float32, device=device)
    wall: dict[str, float] = {}
    with timed(device, wall):
        for step in range(steps):
            if step % config.grid_every == 0:
                grid.update(field_.density, generator=generator)
            batch = torch.randint(len(origins), (config.batch_rays,), generator=generator, device=device)
            coarse, fine = render_rays(field_, origins[batch], directions[batch], config, background, perturb=True,
                                       generator=generator, grid=grid)  # fmt: skip
            loss = F.mse_loss(coarse.rgb, colors[batch]) + F.mse_loss(fine.rgb, colors[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    field_.eval()
    result = evaluate(field_, test, config, grid)
    return {"steps": steps, "n_importance": 16, "psnr": result["psnr"], "final_loss": loss.item(),
            "wall_s": wall["seconds"], "steps_per_s": steps_per_second(steps, wall["seconds"])}  # fmt: skip


# ------------------------------------------------------------------------------------- training: implicit


def torus_cloud(ctx: Context) -> Any:
    if "torus_cloud" not in ctx.cache:
        from vision3d.scenes.library import make_scene
        from vision3d.scenes.samplers import surface_samples

        shape = make_scene("torus").shape
        ctx.cache["torus_cloud"] = (surface_samples(shape, 3000, seed=1), surface_samples(shape, 2000, seed=2))
    return ctx.cache["torus_cloud"]


def igr_config(ctx: Context, steps: int) -> Any:
    from vision3d.implicit.igr import IGRConfig

    return IGRConfig(hidden=(128, 128, 128, 128), steps=steps, batch_size=ctx.n(2048, 512))


def check_igr_fit(ctx: Context) -> dict[str, Any]:
    from vision3d.implicit.igr import fit_igr
    from vision3d.implicit.networks import gradient

    cloud, held_out = torus_cloud(ctx)
    steps = ctx.n(300, 20)
    wall: dict[str, float] = {}
    with timed(ctx.device, wall):
        network, history = fit_igr(cloud.points, None, igr_config(ctx, steps), seed=0, device=ctx.device)
    module_on(network, ctx.device, "the IGR network")
    ctx.cache["igr_network"] = network
    x = held_out.points.float().to(ctx.device).requires_grad_(True)
    f = network(x)
    grad_norm = gradient(f, x, create_graph=False).norm(dim=-1)
    figures: dict[str, Any] = {"steps": steps, "final_loss": history["loss"][-1],
                               "heldout_mean_abs_f": float(f.abs().mean()),
                               "heldout_eikonal": float((grad_norm - 1).abs().mean()), "wall_s": wall["seconds"]}
    cpu_rate = None
    if ctx.compare_with_cpu:
        cpu_steps, cpu_wall = ctx.n(20, 5), {}
        with timed(torch.device("cpu"), cpu_wall):
            fit_igr(cloud.points, None, igr_config(ctx, cpu_steps), seed=0, device="cpu")
        cpu_rate = steps_per_second(cpu_steps, cpu_wall["seconds"])
    return speed_figures(figures, steps_per_second(steps, wall["seconds"]), cpu_rate)


def check_igr_surface_report(ctx: Context) -> dict[str, Any]:
    """``vision3d.implicit.runs.surface_report`` (marching cubes, Chamfer, F-score, IoU) of the network that
    ``igr_fit`` left on the device (a short fit of its own when that check did not run)."""
    from vision3d.implicit.igr import fit_igr
    from vision3d.implicit.runs import surface_report

    network = ctx.cache.get("igr_network")
    if network is None:
        cloud, _ = torus_cloud(ctx)
        network, _ = fit_igr(cloud.points, None, igr_config(ctx, ctx.n(50, 10)), seed=0, device=ctx.device)
    report, mesh = surface_report("igr", network, "torus", resolution=ctx.n(64, 32))
    return {**report, "mesh_vertices": len(mesh.vertices)}


def dvr_views(ctx: Context) -> tuple[Any, Any]:
    if "dvr_views" not in ctx.cache:
        from vision3d.scenes.cameras import hemisphere_cameras, orbit_cameras
        from vision3d.scenes.library import make_scene
        from vision3d.scenes.rendering import render_views

        scene, size = make_scene("sphere"), ctx.n(32, 24)
        ctx.cache["dvr_views"] = (
            render_views(scene, hemisphere_cameras(ctx.n(12, 6), seed=0, width=size, height=size)),
            render_views(scene, orbit_cameras(2, elevation_degrees=25, start_degrees=30, width=size, height=size)),
        )
    return ctx.cache["dvr_views"]


def check_dvr_fit(ctx: Context) -> dict[str, Any]:
    from vision3d.implicit.dvr import DVRConfig, fit_dvr, render_dvr

    train, test = dvr_views(ctx)
    steps = ctx.n(150, 5)
    config = DVRConfig(steps=steps, batch_rays=ctx.n(1024, 256), hidden=64, depth=3)
    wall: dict[str, float] = {}
    with timed(ctx.device, wall):
        field_, history = fit_dvr(train, config, seed=0, device=ctx.device)
    module_on(field_, ctx.device, "the DVR field")
    ious = []
    for camera, mask in zip(test.cameras, test.mask, strict=True):
        _, silhouette = render_dvr(field_, camera, config)
        ious.append(float((silhouette & mask).sum() / (silhouette | mask).sum().clamp_min(1)))
    figures: dict[str, Any] = {"steps": steps, "silhouette_iou": min(ious), "final_loss": history["total"][-1],
                               "hit_rate": history["hit_rate"][-1], "wall_s": wall["seconds"]}
    cpu_rate = None
    if ctx.compare_with_cpu:
        cpu_steps, cpu_wall = ctx.n(10, 3), {}
        with timed(torch.device("cpu"), cpu_wall):
            fit_dvr(train, DVRConfig(steps=cpu_steps, batch_rays=config.batch_rays, hidden=64, depth=3), device="cpu")
        cpu_rate = steps_per_second(cpu_steps, cpu_wall["seconds"])
    return speed_figures(figures, steps_per_second(steps, wall["seconds"]), cpu_rate)


# ----------------------------------------------------------------------------------- training: generative


def digit_images(binary: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """scikit-learn's 8x8 digits (train, val), or smooth synthetic 8x8 images when scikit-learn is missing."""
    try:
        from generative import data

        splits = data.load("digits-binary" if binary else "digits", seed=0)
        return splits.train, splits.val, "digits-binary" if binary else "digits"
    except ModuleNotFoundError as err:
        if missing_module(err) != "sklearn":
            raise
    gen = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(1400, 1, 4, 4, generator=gen), size=8, mode="bilinear", align_corners=False)
    x = (x > 0.5).float() if binary else torch.round(x * 16) / 16
    return x[:1200], x[1200:], "synthetic 8x8 (scikit-learn missing)"


def fit_generative(ctx: Context, build: Callable[[], torch.nn.Module], train: torch.Tensor, val: torch.Tensor,
                   epochs: int, batch_size: int, cpu_epochs: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``generative.fit.fit`` on the device (and briefly on the CPU): the model, the history's figures."""
    from generative.fit import fit
    from mpenv.device import seed_everything

    seed_everything(0)
    model = build().to(ctx.device)
    history = fit(model, train, val, epochs=epochs, batch_size=batch_size, patience=epochs, seed=0)
    module_on(model, ctx.device, "the trained model")
    steps = epochs * math.ceil(len(train) / batch_size)
    figures: dict[str, Any] = {"epochs": epochs, "steps": steps, "train_loss": history.train_loss[-1],
                               "val_loss": history.val_loss[-1], "best_val_loss": history.best_val_loss,
                               "wall_s": history.seconds}  # fmt: skip
    cpu_rate = None
    if ctx.compare_with_cpu:
        seed_everything(0)
        cpu_history = fit(build(), train, val, epochs=cpu_epochs, batch_size=batch_size, patience=cpu_epochs, seed=0)
        cpu_rate = steps_per_second(cpu_epochs * math.ceil(len(train) / batch_size), cpu_history.seconds)
    return model, speed_figures(figures, steps_per_second(steps, history.seconds), cpu_rate, cpu_threads=1)


def check_gen_vae(ctx: Context) -> dict[str, Any]:
    from generative.vae import VAE

    train, val, source = digit_images(binary=True)
    model, figures = fit_generative(ctx, lambda: VAE((1, 8, 8), latent_dim=8, hidden=(256,)), train, val,
                                    epochs=ctx.n(8, 1), batch_size=64, cpu_epochs=1)  # fmt: skip
    samples = model.sample(16)
    if samples.device.type != ctx.device.type or not torch.isfinite(samples).all():
        raise CheckFailed(f"VAE samples on {samples.device} or not finite", figures)
    return {"data": source, **figures}


def check_gen_made(ctx: Context) -> dict[str, Any]:
    """MADE's exact likelihood, and its reproducible sampling: ``sample(n, generator=<seeded CPU generator>)``, as
    the tests call it, on a model that lives on the device."""
    from generative.autoregressive import MADE

    train, val, source = digit_images(binary=True)
    model, figures = fit_generative(ctx, lambda: MADE((1, 8, 8), hidden_sizes=(256,), num_orderings=2), train, val,
                                    epochs=ctx.n(8, 1), batch_size=64, cpu_epochs=1)  # fmt: skip
    with torch.no_grad():
        figures["val_nll"] = float(-model.log_prob(val.to(ctx.device)).mean())
    unseeded = model.sample(16)
    try:
        first = model.sample(16, generator=torch.Generator().manual_seed(0))
        again = model.sample(16, generator=torch.Generator().manual_seed(0))
    except RuntimeError as err:
        raise CheckFailed(f"MADE.sample with a seeded CPU generator on {ctx.device}: {err}", figures) from err
    if not torch.equal(first, again) or unseeded.device.type != ctx.device.type:
        raise CheckFailed("seeded MADE samples do not repeat, or samples are off the device", figures)
    return {"data": source, **figures}


def check_gen_flow(ctx: Context) -> dict[str, Any]:
    from generative import data
    from generative.flows import RealNVP

    splits = data.load("toy:checkerboard", seed=0)
    train = splits.train[: ctx.n(10_000, 2_000)]
    model, figures = fit_generative(ctx, lambda: RealNVP((2,), n_couplings=8, hidden=(64, 64)), train, splits.val,
                                    epochs=ctx.n(3, 1), batch_size=256, cpu_epochs=1)  # fmt: skip
    with torch.no_grad():
        nll = float(-model.log_prob(splits.test.to(ctx.device)).mean())
        samples = model.sample(256)
    if not torch.isfinite(samples).all():
        raise CheckFailed("RealNVP samples are not finite", figures)
    return {"data": "toy:checkerboard", "test_nll": nll, "true_entropy": math.log(8.0), **figures}


def check_gen_diffusion(ctx: Context) -> dict[str, Any]:
    from generative.diffusion import DDPM

    train, val, source = digit_images(binary=False)

    def build() -> torch.nn.Module:
        return DDPM((1, 8, 8), steps=100, channels=16, mults=(1, 2))

    model, figures = fit_generative(ctx, build, train, val, epochs=ctx.n(4, 1), batch_size=64, cpu_epochs=1)
    bound = float(-model.log_prob(val[:64], steps=5, seed=0).mean())
    ddim = model.sample(16, sampler="ddim", steps=10)
    ancestral = model.sample(8)
    for name, samples in (("ddim", ddim), ("ancestral", ancestral)):
        if samples.device.type != ctx.device.type or not ((samples >= 0) & (samples <= 1)).all():
            raise CheckFailed(f"DDPM {name} samples on {samples.device} or outside [0, 1]", figures)
    return {"data": source, "val_nll_bound_5_terms": bound, **figures}


def check_gen_gan(ctx: Context) -> dict[str, Any]:
    from generative import data
    from generative.gans import GAN
    from generative.gans.train import fit_gan
    from generative.metrics import mode_coverage
    from mpenv.device import seed_everything

    train = data.load("toy:eight_gaussians", seed=0).train
    steps = ctx.n(1500, 50)
    seed_everything(0)
    model = GAN((2,), hidden=(128, 128)).to(ctx.device)
    history = fit_gan(model, train, steps=steps, batch_size=256, lr=1e-3, seed=0)
    module_on(model, ctx.device, "the GAN")
    centres, sigma = data.mixture_modes("eight_gaussians")
    modes, quality = mode_coverage(model.sample(2000).cpu(), centres, sigma)
    figures: dict[str, Any] = {"steps": steps, "modes_covered_of_8": modes, "high_quality_fraction": quality,
                               "wall_s": history.seconds}  # fmt: skip
    cpu_rate = None
    if ctx.compare_with_cpu:
        seed_everything(0)
        cpu_steps = ctx.n(150, 10)
        cpu_history = fit_gan(GAN((2,), hidden=(128, 128)), train, steps=cpu_steps, batch_size=256, lr=1e-3, seed=0)
        cpu_rate = steps_per_second(cpu_steps, cpu_history.seconds)
    return speed_figures(figures, steps_per_second(steps, history.seconds), cpu_rate, cpu_threads=1)


# --------------------------------------------------------------------------------------- training: agents

ENV_ID = "CartPole-v1"


def greedy_return(act: Callable[[np.ndarray], np.ndarray], episodes: int = 5) -> float:
    """Mean undiscounted return of one episode in each of ``episodes`` seeded CartPoles, played greedily."""
    from agents.envs import make_vector_env
    from agents.evaluate import vector_returns

    envs = make_vector_env(ENV_ID, {}, episodes, seed=12345)
    try:
        return float(np.mean(vector_returns(envs, act, seed=12345, max_steps=500)))
    finally:
        envs.close()


def agent_run(ctx: Context, train: Callable[[Any], torch.nn.Module], total_steps: int,
              actor: Callable[[torch.nn.Module], Callable[[np.ndarray], np.ndarray]]) -> dict[str, Any]:  # fmt: skip
    """Train on the device (and with the same budget on the CPU), then a greedy evaluation."""
    require("gymnasium")
    from agents.run import RunContext

    episode_returns: list[float] = []

    def log(tag: str, value: float, step: int) -> None:
        if tag == "charts/episodic_return":
            episode_returns.append(value)

    wall: dict[str, float] = {}
    with timed(ctx.device, wall):
        network = train(RunContext(ENV_ID, total_steps, seed=1, device=str(ctx.device), log=log))
    module_on(network, ctx.device, "the trained network")
    last10 = float(np.mean(episode_returns[-10:])) if episode_returns else None
    figures: dict[str, Any] = {"env_steps": total_steps, "greedy_return": greedy_return(actor(network)),
                               "episodes": len(episode_returns), "last10_train_return": last10,
                               "wall_s": wall["seconds"]}  # fmt: skip
    cpu_rate = None
    if ctx.compare_with_cpu:
        cpu_wall: dict[str, float] = {}
        with timed(torch.device("cpu"), cpu_wall):
            train(RunContext(ENV_ID, total_steps, seed=1, device="cpu"))
        cpu_rate = steps_per_second(total_steps, cpu_wall["seconds"])
    return speed_figures(figures, steps_per_second(total_steps, wall["seconds"]), cpu_rate, cpu_threads=1)


def check_agents_dqn(ctx: Context) -> dict[str, Any]:
    require("gymnasium")
    from agents.dqn import DQNConfig, actor_from_network, train_dqn

    steps = ctx.n(3000, 300)
    config = DQNConfig(learning_starts=ctx.n(500, 100), train_frequency=ctx.n(64, 50), gradient_steps=ctx.n(32, 4),
                       buffer_size=steps, eval_every=0)  # fmt: skip
    return agent_run(ctx, lambda run: train_dqn(config, run), steps, actor_from_network)


def check_agents_a2c(ctx: Context) -> dict[str, Any]:
    require("gymnasium")
    from agents.actor_critic import A2CConfig, train_a2c
    from agents.policies import actor_from_network

    config = A2CConfig(n_envs=8, n_steps=5, eval_every=0, eval_every_episodes=2)
    return agent_run(ctx, lambda run: train_a2c(config, run), ctx.n(4000, 400), actor_from_network)


def check_agents_reinforce(ctx: Context) -> dict[str, Any]:
    require("gymnasium")
    from agents.policies import actor_from_network
    from agents.reinforce import ReinforceConfig, train_reinforce

    config = ReinforceConfig(episodes_per_update=2, eval_every=0, eval_every_episodes=2)
    return agent_run(ctx, lambda run: train_reinforce(config, run), ctx.n(3000, 300), actor_from_network)


# ------------------------------------------------------------------------------------------------ the run

CHECKS: dict[str, tuple[Callable[[Context], dict[str, Any]], str]] = {
    "device_layer": (check_device_layer, "get_device/seed_everything/to_device; GPU name"),
    "eq_volume_render": (check_eq_volume_render, "volume_render + grads, stratified/hierarchical samples"),
    "eq_positional_encoding": (check_eq_positional_encoding, "PositionalEncoding forward + grad"),
    "eq_fourier_features": (check_eq_fourier_features, "FourierFeatures forward + grad"),
    "eq_hash_grid": (check_eq_hash_grid, "HashGrid forward + grad (inputs, table)"),
    "eq_occupancy_grid": (check_eq_occupancy_grid, "OccupancyGrid update + mask"),
    "eq_body_model": (check_eq_body_model, "BodyModel vertices/joints + grads"),
    "eq_scene_render": (check_eq_scene_render, "exact render_rays given device rays (render() takes no device)"),
    "nerf_hash": (check_nerf_hash, "train_nerf hash-nerf preset, held-out PSNR"),
    "nerf_positional": (check_nerf_positional, "train_nerf nerf preset, held-out PSNR"),
    "nerf_loop_device_generator": (check_nerf_loop_device_generator, "NeRF loop with a device generator"),
    "igr_fit": (check_igr_fit, "fit_igr on a torus cloud"),
    "igr_surface_report": (check_igr_surface_report, "runs.surface_report of the device network"),
    "dvr_fit": (check_dvr_fit, "fit_dvr on sphere views, silhouette IoU"),
    "gen_vae": (check_gen_vae, "VAE via generative.fit"),
    "gen_made": (check_gen_made, "MADE exact NLL; sample() with a seeded CPU generator"),
    "gen_flow": (check_gen_flow, "RealNVP on toy:checkerboard"),
    "gen_diffusion": (check_gen_diffusion, "DDPM (UNet) on 8x8 digits, ELBO, samplers"),
    "gen_gan": (check_gen_gan, "GAN via fit_gan on eight Gaussians"),
    "agents_dqn": (check_agents_dqn, "DQN on CartPole-v1"),
    "agents_a2c": (check_agents_a2c, "A2C on CartPole-v1"),
    "agents_reinforce": (check_agents_reinforce, "REINFORCE on CartPole-v1"),
}


def simulate_missing(names: str) -> list[str]:
    """Make ``import name`` fail for each comma-separated name (``None`` in ``sys.modules``)."""
    hidden = [name.strip() for name in names.split(",") if name.strip()]
    for name in hidden:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        sys.modules[name] = None  # type: ignore[assignment]
    return hidden


def bootstrap_mpenv() -> str:
    """``import mpenv``; when its ``__init__`` fails (it registers gymnasium envs), an empty package module
    stands in so that ``mpenv.device`` and the other torch submodules still import. Returns a note."""
    try:
        import mpenv  # noqa: F401

        return "import mpenv: ok"
    except ImportError as err:
        package = types.ModuleType("mpenv")
        package.__path__ = [str(REPO / "mpenv")]
        package.__file__ = str(REPO / "mpenv" / "__init__.py")
        sys.modules["mpenv"] = package
        return f"import mpenv failed ({type(err).__name__}: {err}); mpenv submodules imported without its __init__"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


KEY_FIGURES = ("gpu", "max_diff", "psnr", "steps_per_s", "cpu_steps_per_s", "speedup_vs_cpu", "silhouette_iou",
               "heldout_mean_abs_f", "chamfer_l1", "iou", "val_loss", "test_nll", "modes_covered_of_8",
               "greedy_return", "wall_s")  # fmt: skip


def summary_line(result: Result) -> str:
    if result.status != "pass":
        where = f" @ {result.location.split(': ')[0]}" if result.location else ""
        return (result.reason + where)[:110]
    keys = [k for k in KEY_FIGURES if k in result.figures] or list(result.figures)[:4]
    return ", ".join(f"{k}={format_value(result.figures[k])}" for k in keys)[:110]


def print_table(results: list[Result]) -> None:
    width = max([len(r.name) for r in results] + [5])
    print(f"\n{'check':{width}s}  {'status':7s} {'sec':>6s}  key figures / reason")
    print("-" * (width + 130))
    for r in results:
        print(f"{r.name:{width}s}  {r.status:7s} {r.seconds:6.1f}  {summary_line(r)}")
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skipped")}
    print("-" * (width + 130))
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    for r in results:
        if r.status == "fail":
            print(f"\n[{r.name}] {r.reason[:600]}")
            if r.location:
                print(f"    at {r.location}{'  (device mismatch)' if r.device_mismatch else ''}")


def to_json(value: Any) -> Any:
    """Results as JSON: non-finite floats become strings, tensors and numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (np.generic, torch.Tensor)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_json(path: Path | None, meta: dict[str, Any], results: list[Result]) -> None:
    if path is None:
        return
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skipped")}
    document = {"meta": meta, "summary": counts, "results": [asdict(r) for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_json(document), indent=2) + "\n")
    tmp.replace(path)


def selected(only: str | None) -> tuple[list[str], list[str]]:
    """The checks ``--only`` picks (names or shell patterns), and the patterns that matched nothing."""
    if not only:
        return list(CHECKS), []
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    names = [name for name in CHECKS if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in CHECKS)]
    return names, unknown


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (mpenv.device)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for all results")
    parser.add_argument("--quick", action="store_true", help="much smaller step counts (a CPU dry run)")
    parser.add_argument("--only", default=None, help="comma-separated check names or patterns: " + ", ".join(CHECKS))
    parser.add_argument("--no-cpu-baseline", action="store_true", help="skip the CPU runs for speed ratios")
    parser.add_argument("--budget-s", type=float, default=170.0, help="skip the checks left after this many seconds")
    parser.add_argument("--check-timeout-s", type=float, default=75.0, help="interrupt one check after this long")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 with --quick, else torch's default)")
    parser.add_argument("--simulate-missing", default="", help="comma-separated packages to hide (try the skips)")
    return parser.parse_args(argv)


def precision_settings() -> dict[str, Any]:
    """Whether float32 matmuls and convolutions may use TF32 here (it would loosen the ``eq_*`` checks)."""
    settings: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        settings["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    with contextlib.suppress(Exception):
        settings["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    return settings


def resolve_device(spec: str) -> tuple[torch.device, str]:
    """The device through ``mpenv.device.get_device``; the CPU (with the reason) when that fails."""
    try:
        from mpenv.device import get_device

        return get_device(spec), ""
    except Exception as err:
        return torch.device("cpu"), f"--device {spec} unusable ({type(err).__name__}: {err})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    hidden = simulate_missing(args.simulate_missing)
    threads = args.threads if args.threads is not None else (1 if args.quick else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    notes = [bootstrap_mpenv()]
    device, problem = resolve_device(args.device)
    if problem:
        notes.append(problem)
    names, unknown = selected(args.only)
    meta: dict[str, Any] = {"argv": sys.argv, "device_requested": args.device, "device": str(device),
                            "quick": args.quick, "python": platform.python_version(), "torch": torch.__version__,
                            "torch_cuda": torch.version.cuda, "torch_threads": torch.get_num_threads(),
                            "host": platform.node(), "simulated_missing": hidden, "notes": notes,
                            "tolerance": TOLERANCE, **precision_settings()}  # fmt: skip
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            meta["gpu"] = torch.cuda.get_device_name(device)
    print(f"cuda_check: device {device} {meta.get('gpu', '')} (requested {args.device}), torch {torch.__version__}, "
          f"{'quick' if args.quick else 'full'} run; " + "; ".join(notes), flush=True)
    ctx = Context(device, args.device, args.quick, not args.no_cpu_baseline)
    results = [Result(p, "skipped", 0.0, reason="skipped: no check matches this --only pattern") for p in unknown]
    for name in names:
        elapsed = time.perf_counter() - started
        if problem and name != "device_layer":  # a CPU run at full size would only spend the device's time
            results.append(Result(name, "skipped", 0.0, reason=f"skipped: {problem}"))
            continue
        if elapsed > args.budget_s:
            results.append(Result(name, "skipped", 0.0, reason=f"skipped: time budget of {args.budget_s:.0f} s spent"))
            continue
        limit = min(args.check_timeout_s, max(args.budget_s - elapsed, 1.0) + 20.0)
        print(f"[{elapsed:6.1f}s] {name} ...", flush=True)
        check, what = CHECKS[name]
        result = run_check(name, check, ctx, limit)
        result.what = what
        results.append(result)
        status = "" if result.status == "skipped" else f"{result.status}: "
        print(f"          {status}{summary_line(result)} ({result.seconds:.1f} s)", flush=True)
        meta["seconds"] = time.perf_counter() - started
        with contextlib.suppress(Exception):
            write_json(args.out, meta, results)  # after every check: a killed run still leaves its results
    if "nerf_views_seconds" in ctx.cache:
        meta["nerf_views_render_s"] = ctx.cache["nerf_views_seconds"]
    meta["seconds"] = time.perf_counter() - started
    print_table(results)
    print(f"\ntotal {meta['seconds']:.1f} s")
    try:
        write_json(args.out, meta, results)
        if args.out is not None:
            print(f"results written to {args.out}")
    except Exception as err:
        print(f"could not write {args.out}: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
