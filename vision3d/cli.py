"""``mpenv-3d``: train, evaluate and render 3D vision models on the exact scenes of :mod:`vision3d.scenes`.

    mpenv-3d scenes                                    # the scene library
    mpenv-3d train nerf --scene blocks --steps 3000    # a run directory under runs/
    mpenv-3d train hash-nerf --scene body --views 40
    mpenv-3d train igr --scene torus --points 3000     # a signed distance from a point cloud alone
    mpenv-3d train occupancy --scene body              # an occupancy network on labelled points
    mpenv-3d train dvr --scene sphere --views 20 --resolution 24   # a surface from images and masks
    mpenv-3d train nerf --scene blocks --views 4 --color-consistency 0.1  # sparse views
    mpenv-3d train nerf --scene body --precrop 100     # the positional encoding needs central crops first here
    mpenv-3d train nerf --resume runs/blocks__nerf__0__...                 # continue an interrupted run
    mpenv-3d train gaussians --scene blocks --steps 3000   # 3D Gaussian splatting, from random Gaussians in a box
    mpenv-3d train gaussians --scene body --init surface --initial-gaussians 5000  # or from the exact surface
    mpenv-3d train gaussians --scene blocks --init scene.ply   # or from a .ply (exported, or another 3DGS tool's)
    mpenv-3d train --resume runs/blocks__gaussians__0__... --steps 5000     # continue or extend a run
    mpenv-3d eval RUN_DIR                              # PSNR / SSIM on the held-out views (NeRF, Gaussians),
                                                       # or Chamfer-L1, normal consistency, F-score, IoU
    mpenv-3d render RUN_DIR --out turntable.mp4        # a turntable video (or .gif, or .png for one frame)
    mpenv-3d render scene.ply --out turntable.gif      # Gaussians from a 3DGS .ply file (128 pixels by default)
    mpenv-3d mesh RUN_DIR --out scene.ply              # marching cubes of the density or the surface
    mpenv-3d export RUN_DIR --out scene.ply            # a Gaussians run in the .ply layout 3DGS viewers read

Training views are drawn uniformly on the upper hemisphere (seeded); held-out views sit on an orbit at 25 degrees
elevation between them. Every run stores its data recipe in ``config.json``, so ``eval``/``render`` rebuild the
same views. A ``.ply`` given to ``--init`` sets the SH degree of the run; ``--sh-degree`` must then agree with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

NERF_MODELS = ("nerf", "fourier-nerf", "hash-nerf")
IMPLICIT_MODELS = ("igr", "occupancy", "dvr")
SPLAT_MODELS = ("gaussians",)
MODELS = NERF_MODELS + IMPLICIT_MODELS + SPLAT_MODELS
SPLAT_INITS = ("box", "surface")
PLY_RENDER_SIZE = 128  # a .ply file has no training resolution to default to


def _data_config(args: argparse.Namespace) -> dict:
    return {"scene": args.scene, "views": args.views, "test_views": args.test_views, "resolution": args.resolution,
            "specular": args.specular, "data_seed": args.seed}


def _views(data: dict):
    """The training and held-out views of a run's data recipe (``config.json``'s ``data``)."""
    from vision3d.scenes.library import scene_views

    return scene_views(data["scene"], data["views"], data["test_views"], data["resolution"], data["data_seed"],
                       data["specular"])


def _load_run(run_dir: str):
    """Config, data recipe and trained field of a run directory (weights only, shapes checked)."""
    from mpenv.checkpoint import load_config, load_state_dict_checked, load_torch
    from vision3d.nerf.train import NeRFConfig, build_field

    config = load_config(run_dir)
    if config.get("model") not in NERF_MODELS:
        raise SystemExit(f"{run_dir}: not a NeRF run (model {config.get('model')!r})")
    fields = {k: v for k, v in config["nerf"].items() if k in NeRFConfig.__dataclass_fields__}
    nerf_config = NeRFConfig(**fields)
    state = load_torch(run_dir)
    field_ = build_field(nerf_config)
    load_state_dict_checked(field_, state["modules"]["field"], f"{run_dir}/checkpoint.pt")
    grid = None
    if nerf_config.occupancy_grid and "grid" in state["modules"]:
        from vision3d.nerf.train import make_grid

        grid = make_grid(nerf_config)
        load_state_dict_checked(grid, state["modules"]["grid"], f"{run_dir}/checkpoint.pt")
    field_.eval()
    return config, nerf_config, field_, grid


def _is_ply(path: str) -> bool:
    return str(path).lower().endswith(".ply")


def _init_source(value: str) -> str:
    """``--init``: ``box``, ``surface`` or a ``.ply`` file of Gaussians (checked to exist before any work)."""
    if value in SPLAT_INITS:
        return value
    if not _is_ply(value):
        raise argparse.ArgumentTypeError(f"expected {' or '.join(SPLAT_INITS)} or a .ply file, got {value!r}")
    if not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value}: no such .ply file")
    return value


def _load_gaussians(source: str):
    """``(run config or None, Gaussians, SH degree to render with)`` of a splatting run directory or a 3DGS ``.ply``.

    A run renders with the SH bands open at its last step, as its own held-out evaluation did; a file with all of
    its bands. Checkpoint fields are checked (weights only, names, shapes, finite) and errors name the file."""
    import torch

    from mpenv.checkpoint import TORCH_FILE, CheckpointError, load_config, load_torch
    from vision3d.splatting.gaussians import Gaussians, load_ply

    if _is_ply(source):
        gaussians = load_ply(source)
        return None, gaussians, gaussians.sh_degree
    config = load_config(source)
    if config.get("model") not in SPLAT_MODELS:
        raise SystemExit(f"{source}: not a Gaussian splatting run (model {config.get('model')!r})")
    checkpoint = Path(source) / TORCH_FILE if Path(source).is_dir() else Path(source)
    state = load_torch(checkpoint, required=("step", "gaussians"))
    fields, names = state["gaussians"], list(Gaussians.__dataclass_fields__)
    missing = [name for name in names if not isinstance(fields, dict) or not isinstance(fields.get(name), torch.Tensor)]
    if missing:
        raise CheckpointError(f"{checkpoint}: the Gaussians' fields {missing} are missing")
    try:
        gaussians = Gaussians(**{name: fields[name].float() for name in names}).check()
    except ValueError as err:
        raise CheckpointError(f"{checkpoint}: {err}") from None
    interval = config.get("gaussians", {}).get("sh_interval")
    step = state["step"]
    degree = gaussians.sh_degree
    if isinstance(interval, int) and interval > 0 and isinstance(step, int):
        degree = min(degree, step // interval)
    return config, gaussians, degree


def cmd_scenes(args: argparse.Namespace) -> None:
    from vision3d.scenes import make_scene, scene_names

    for name in scene_names():
        scene = make_scene(name)
        print(f"{name:10s} {type(scene.shape).__name__:12s} bounding radius {scene.bounding_radius():.2f}")


def train_implicit_model(args: argparse.Namespace) -> None:
    from mpenv.logger import make_run_dir
    from vision3d.implicit.runs import CONFIGS, train_implicit

    overrides = {"steps": args.steps, "lr": args.learning_rate}
    if args.model == "dvr":
        overrides["batch_rays"] = args.batch_rays
    config = CONFIGS[args.model](**{k: v for k, v in overrides.items() if v is not None})
    data = ({"views": args.views, "resolution": args.resolution} if args.model == "dvr"
            else {"points": args.points, "normals": args.normals})
    run_dir = make_run_dir(args.logdir, args.scene, args.model, args.seed)
    print(f"run directory: {run_dir}", file=sys.stderr)
    report = train_implicit(args.model, args.scene, run_dir, config, data, args.seed, not args.no_progress)
    print(f"{args.model} on {args.scene}: " + ", ".join(f"{k} {v:.4f}" for k, v in report.items()))


def _splat_config(args: argparse.Namespace):
    """The SplatConfig of a new gaussians run and the Gaussians it starts from (``None``: random ones in the box,
    which train_gaussians draws from the config's seed). Everything is checked before a run directory is made."""
    from vision3d.splatting.gaussians import load_ply
    from vision3d.splatting.train import SplatConfig, check_config, config_for_steps, surface_gaussians

    overrides = {key: value for key, value in {
        "steps": args.steps, "initial_gaussians": args.initial_gaussians, "sh_degree": args.sh_degree,
        "max_gaussians": args.max_gaussians, "grad_threshold": args.grad_threshold, "split_mode": args.split_mode,
        "eval_every": args.eval_every, "seed": args.seed, "densify_until": 0 if args.no_densify else None,
    }.items() if value is not None}  # fmt: skip
    initial = None
    if _is_ply(args.init):
        initial = load_ply(args.init)
        if args.sh_degree is not None and args.sh_degree != initial.sh_degree:
            raise ValueError(f"{args.init} holds SH degree {initial.sh_degree} but --sh-degree is {args.sh_degree}; "
                             "leave --sh-degree out to train at the file's degree")
        # The file decides both: the run trains the bands it holds, and the config records what it started from.
        overrides |= {"sh_degree": initial.sh_degree, "initial_gaussians": len(initial)}
    config = config_for_steps(overrides.pop("steps", SplatConfig.steps), **overrides)
    check_config(config)
    if args.init == "surface":
        initial = surface_gaussians(args.scene, config.initial_gaussians, config.sh_degree, config.seed)
    return config, initial


def _resumed(args: argparse.Namespace, config_class: type, key: str) -> tuple[dict, object, Path]:
    """The data recipe, the config (``config.json[key]``; ``--steps`` may extend the run) and the directory of the
    run that ``--resume`` names."""
    from mpenv.checkpoint import load_config

    saved = load_config(args.resume)
    fields = config_class.__dataclass_fields__
    config = config_class(**{k: v for k, v in saved[key].items() if k in fields})
    if args.steps is not None:
        config.steps = args.steps
    return saved["data"], config, Path(args.resume)


def train_splatting(args: argparse.Namespace) -> None:
    from mpenv.logger import make_run_dir
    from vision3d.splatting.train import SplatConfig, train_gaussians

    initial = None
    if args.resume:  # the checkpoint holds the Gaussians; --init is moot
        data, config, run_dir = _resumed(args, SplatConfig, "gaussians")
    else:
        config, initial = _splat_config(args)
        init = args.init if not _is_ply(args.init) else str(Path(args.init).resolve())
        data = {**_data_config(args), "init": init}
        run_dir = make_run_dir(args.logdir, data["scene"], "gaussians", args.seed)
    train, test = _views(data)
    print(f"run directory: {run_dir}", file=sys.stderr)
    run = train_gaussians(train, test, config, run_dir=run_dir, progress=None if not args.no_progress else False,
                          resume=bool(args.resume), initial=initial,
                          run_config={"model": "gaussians", "gaussians": asdict(config), "data": data})
    last = run.history[-1]
    print(f"gaussians on {data['scene']}: step {last['step']}, held-out PSNR {last['psnr']:.2f} dB, "
          f"SSIM {last['ssim']:.3f}, {last['gaussians']} Gaussians, {last['train_seconds']:.0f} s of training")


def cmd_train(args: argparse.Namespace) -> None:
    from mpenv.checkpoint import load_config

    if args.model in IMPLICIT_MODELS and not args.resume:
        return train_implicit_model(args)
    resumed = load_config(args.resume).get("model") if args.resume else None
    if args.model in SPLAT_MODELS and resumed not in (None, *SPLAT_MODELS):
        raise SystemExit(f"{args.resume}: not a Gaussian splatting run (model {resumed!r})")
    if args.model in SPLAT_MODELS or resumed in SPLAT_MODELS:
        return train_splatting(args)
    from mpenv.logger import make_run_dir
    from vision3d.nerf.train import NeRFConfig, preset, train_nerf

    if args.resume:
        data, config, run_dir = _resumed(args, NeRFConfig, "nerf")
    else:
        if args.model not in NERF_MODELS:
            raise SystemExit(f"unknown model {args.model!r}; choose one of {', '.join(MODELS)}")
        overrides = {key: value for key, value in {
            "steps": args.steps, "batch_rays": args.batch_rays, "n_samples": args.samples, "lr": args.learning_rate,
            "n_importance": args.importance, "depth_smoothness": args.depth_smoothness, "seed": args.seed,
            "distortion": args.distortion, "color_consistency": args.color_consistency,
            "sample_annealing": args.sample_annealing, "precrop_steps": args.precrop,
            "frequency_annealing": args.frequency_annealing, "eval_every": args.eval_every,
        }.items() if value is not None}  # fmt: skip
        config = preset(args.model, **overrides)
        data = _data_config(args)
        run_dir = make_run_dir(args.logdir, data["scene"], args.model, args.seed)
    train, test = _views(data)
    model = args.model if not args.resume else load_config(args.resume)["model"]
    print(f"run directory: {run_dir}", file=sys.stderr)
    run = train_nerf(train, test, config, run_dir=run_dir, progress=None if not args.no_progress else False,
                     resume=bool(args.resume), run_config={"model": model, "nerf": asdict(config), "data": data})
    last = run.history[-1]
    print(f"{model} on {data['scene']}: step {last['step']}, held-out PSNR {last['psnr']:.2f} dB, "
          f"SSIM {last['ssim']:.3f}, {last['train_seconds']:.0f} s of training")


def _model_of(run_dir: str) -> str:
    from mpenv.checkpoint import load_config

    return load_config(run_dir).get("model", "")


def eval_splatting(run_dir: str) -> None:
    from vision3d.splatting.train import evaluate_gaussians

    config, gaussians, degree = _load_gaussians(run_dir)
    data = config["data"]
    _, test = _views(data)
    result = evaluate_gaussians(gaussians, test, degree)
    print(json.dumps({"scene": data["scene"], "model": config["model"], "test_views": len(test),
                      "gaussians": len(gaussians), "sh_degree": degree, "psnr": round(result["psnr"], 3),
                      "ssim": round(result["ssim"], 4)}))


def cmd_eval(args: argparse.Namespace) -> None:
    from vision3d.nerf.train import evaluate

    if _is_ply(args.run_dir):
        raise SystemExit(f"{args.run_dir}: eval needs a run directory; a .ply file has no held-out views")
    if _model_of(args.run_dir) in SPLAT_MODELS:
        return eval_splatting(args.run_dir)
    if _model_of(args.run_dir) in IMPLICIT_MODELS:
        from vision3d.implicit.runs import load_implicit, surface_report

        config, network = load_implicit(args.run_dir)
        report, _ = surface_report(config["model"], network, config["data"]["scene"])
        print(json.dumps({"scene": config["data"]["scene"], "model": config["model"],
                          **{k: round(v, 5) for k, v in report.items()}}))
        return

    config, nerf_config, field_, grid = _load_run(args.run_dir)
    data = config["data"]
    _, test = _views(data)
    result = evaluate(field_, test, nerf_config, grid)
    print(json.dumps({"scene": data["scene"], "model": config["model"], "test_views": len(test),
                      "psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4)}))


def _renderer(run_dir: str):
    """``(image size, camera -> image [H, W, 3])`` of a NeRF, DVR or Gaussians run, or of a .ply of Gaussians."""
    import torch

    if _is_ply(run_dir) or _model_of(run_dir) in SPLAT_MODELS:
        from vision3d.splatting.render import render_gaussians

        config, gaussians, degree = _load_gaussians(run_dir)
        background = torch.ones(3)  # the library renders every view on white: what the Gaussians were fit over
        size = config["data"]["resolution"] if config else PLY_RENDER_SIZE
        return size, lambda camera: render_gaussians(gaussians, camera, background, sh_degree=degree).image
    if _model_of(run_dir) == "dvr":
        from vision3d.implicit.dvr import render_dvr
        from vision3d.implicit.runs import config_from_json, load_implicit

        config, network = load_implicit(run_dir)
        dvr_config = config_from_json("dvr", config["dvr"])
        return config["data"]["resolution"], lambda camera: render_dvr(network, camera, dvr_config)[0]
    if _model_of(run_dir) in IMPLICIT_MODELS:
        raise SystemExit(f"{run_dir}: render draws NeRF and DVR runs; mesh this one with `mpenv-3d mesh`")
    from vision3d.nerf.train import render_image

    config, nerf_config, field_, grid = _load_run(run_dir)
    background = torch.ones(3)
    return config["data"]["resolution"], lambda camera: render_image(field_, camera, nerf_config, background,
                                                                    grid=grid)[0]


def cmd_render(args: argparse.Namespace) -> None:
    import imageio.v2 as imageio
    from tqdm.auto import tqdm

    from vision3d.scenes import orbit_cameras

    size, draw = _renderer(args.run_dir)
    size = args.resolution or size
    cameras = orbit_cameras(1 if args.out.endswith(".png") else args.frames, elevation_degrees=args.elevation,
                            width=size, height=size)
    frames = [(draw(camera).clamp(0, 1).numpy() * 255).round().astype("uint8")
              for camera in tqdm(cameras, desc="render", disable=len(cameras) == 1)]
    if args.out.endswith(".png"):
        imageio.imwrite(args.out, frames[0])
    elif args.out.endswith(".gif"):
        imageio.mimwrite(args.out, frames, duration=1000 / args.fps, loop=0)
    else:
        imageio.mimwrite(args.out, frames, fps=args.fps, macro_block_size=1)
    print(f"wrote {args.out} ({len(frames)} frame{'s' if len(frames) > 1 else ''})")


def cmd_mesh(args: argparse.Namespace) -> None:
    from vision3d.implicit import extract_mesh

    if _model_of(args.run_dir) in SPLAT_MODELS:
        raise SystemExit(f"{args.run_dir}: Gaussians have no density field to mesh; write them as a .ply with "
                         f"`mpenv-3d export {args.run_dir} --out scene.ply`")
    if _model_of(args.run_dir) in IMPLICIT_MODELS:
        from vision3d.implicit.runs import load_implicit, surface_report

        config, network = load_implicit(args.run_dir)
        _, mesh = surface_report(config["model"], network, config["data"]["scene"], resolution=args.resolution)
        mesh.save(args.out)
        print(f"wrote {args.out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces")
        return
    _, nerf_config, field_, _ = _load_run(args.run_dir)
    radius = nerf_config.scene_radius
    mesh = extract_mesh(field_.density, bounds=(-radius, radius), resolution=args.resolution, level=args.density,
                        inside="positive")
    mesh.save(args.out)
    print(f"wrote {args.out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces")


def cmd_export(args: argparse.Namespace) -> None:
    from vision3d.splatting.gaussians import save_ply

    if not _is_ply(args.out):
        raise ValueError(f"--out must be a .ply file, got {args.out!r}")
    _, gaussians, _ = _load_gaussians(args.run_dir)
    save_ply(args.out, gaussians)
    print(f"wrote {args.out}: {len(gaussians)} Gaussians, SH degree {gaussians.sh_degree}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpenv-3d", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("scenes", help="list the scene library").set_defaults(func=cmd_scenes)

    t = commands.add_parser("train", help="train a model on a scene; writes a run directory")
    t.add_argument("model", nargs="?", help=f"one of: {', '.join(MODELS)}")
    t.add_argument("--scene", default="blocks", help="a library scene (mpenv-3d scenes)")
    t.add_argument("--views", type=int, default=40,
                   help="training views on the upper hemisphere (NeRF, DVR, Gaussians)")
    t.add_argument("--points", type=int, default=3000,
                   help="surface points (igr) or labelled points (occupancy) drawn from the exact shape")
    t.add_argument("--normals", action="store_true", help="give IGR the surface normals too")
    t.add_argument("--test-views", type=int, default=8, help="held-out views on an orbit")
    t.add_argument("--resolution", type=int, default=64, help="image width and height in pixels")
    t.add_argument("--specular", type=float, default=0.0, help="strength of the view-dependent highlight")
    t.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the model's)")
    t.add_argument("--batch-rays", type=int, default=None, help="rays per step")
    t.add_argument("--samples", type=int, default=None, help="stratified samples per ray")
    t.add_argument("--importance", type=int, default=None, help="hierarchical (fine) samples per ray")
    t.add_argument("--learning-rate", type=float, default=None, help="Adam's initial step size")
    t.add_argument("--depth-smoothness", type=float, default=None,
                   help="weight of RegNeRF's depth smoothness on unobserved patches (sparse views)")
    t.add_argument("--distortion", type=float, default=None,
                   help="weight of mip-NeRF 360's distortion loss, which removes haze and floaters (sparse views)")
    t.add_argument("--precrop", type=int, default=None,
                   help="first steps drawn from the central half of each view (NeRF's fix for small objects on a "
                        "large empty background, such as the body scene, which otherwise train to an empty field)")
    t.add_argument("--color-consistency", type=float, default=None,
                   help="weight of the penalty on colour that changes with the viewing direction (sparse views)")
    t.add_argument("--sample-annealing", type=int, default=None,
                   help="steps over which RegNeRF's sample span grows from the middle half of each ray to all of it")
    t.add_argument("--frequency-annealing", type=int, default=None,
                   help="steps over which the positional encoding's octaves open, coarse to fine (FreeNeRF)")
    t.add_argument("--eval-every", type=int, default=None, help="steps between held-out evaluations")
    t.add_argument("--init", type=_init_source, default="box", metavar="{box,surface,PATH.ply}",
                   help="the Gaussians a run starts from: random in the scene cube (box), on the scene's exact "
                        "surface (surface), or a 3DGS .ply file, whose SH degree the run adopts")
    t.add_argument("--initial-gaussians", type=int, default=None, help="Gaussians drawn by --init box or surface")
    t.add_argument("--sh-degree", type=int, default=None,
                   help="spherical harmonics degree of the Gaussians' colour, 0-3 (default 3, or the --init file's)")
    t.add_argument("--max-gaussians", type=int, default=None, help="cap on the Gaussians densification makes")
    t.add_argument("--grad-threshold", type=float, default=None,
                   help="screen-space gradient above which a Gaussian is cloned or split")
    t.add_argument("--no-densify", action="store_true",
                   help="keep the set of Gaussians fixed: no clone, split, prune or opacity reset (to refine a .ply)")
    t.add_argument("--split-mode", choices=("moments", "sample"), default=None,
                   help="how a large Gaussian is split: into a pair with its mean and covariance (moments, the "
                        "default) or at two random draws from it, 1.6x narrower (sample, the paper's)")
    t.add_argument("--seed", type=int, default=0, help="seed of the network, the batches and the training views")
    t.add_argument("--logdir", default="runs", help="where the run directory is made")
    t.add_argument("--resume", default=None, help="continue this run directory")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = commands.add_parser("eval", help="PSNR and SSIM of a run on its held-out views")
    e.add_argument("run_dir")
    e.set_defaults(func=cmd_eval)

    r = commands.add_parser("render", help="a turntable video (.mp4/.gif) or one view (.png) of a trained run")
    r.add_argument("run_dir", help="a run directory, or a .ply file of Gaussians")
    r.add_argument("--out", default="turntable.mp4")
    r.add_argument("--frames", type=int, default=60)
    r.add_argument("--fps", type=int, default=20)
    r.add_argument("--elevation", type=float, default=25.0, help="camera elevation in degrees")
    r.add_argument("--resolution", type=int, default=None,
                   help=f"frame size (default: the training resolution; {PLY_RENDER_SIZE} for a .ply)")
    r.set_defaults(func=cmd_render)

    m = commands.add_parser("mesh", help="marching cubes of a trained field's density")
    m.add_argument("run_dir")
    m.add_argument("--out", default="scene.ply", help=".ply or .obj")
    m.add_argument("--resolution", type=int, default=128)
    m.add_argument("--density", type=float, default=10.0, help="the density level set that is meshed")
    m.set_defaults(func=cmd_mesh)

    x = commands.add_parser("export", help="the Gaussians of a splatting run as a .ply file 3DGS viewers read")
    x.add_argument("run_dir")
    x.add_argument("--out", default="scene.ply", help=".ply")
    x.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as err:  # bad settings or files (CheckpointError too): one line, no traceback
        parser.exit(2, f"mpenv-3d: error: {err}\n")


if __name__ == "__main__":
    main()
