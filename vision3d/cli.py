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
    mpenv-3d eval RUN_DIR                              # PSNR / SSIM on the held-out views (NeRF), or
                                                       # Chamfer-L1, normal consistency, F-score, IoU
    mpenv-3d render RUN_DIR --out turntable.mp4        # a turntable video (or .png for one frame)
    mpenv-3d mesh RUN_DIR --out scene.ply              # marching cubes of the density or the surface

Training views are drawn uniformly on the upper hemisphere (seeded); held-out views sit on an orbit at 25 degrees
elevation between them. Every run stores its data recipe in ``config.json``, so ``eval``/``render`` rebuild the
same views.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from vision3d.scenes.library import scene_views

NERF_MODELS = ("nerf", "fourier-nerf", "hash-nerf")
IMPLICIT_MODELS = ("igr", "occupancy", "dvr")


def _data_config(args: argparse.Namespace) -> dict:
    return {"scene": args.scene, "views": args.views, "test_views": args.test_views, "resolution": args.resolution,
            "specular": args.specular, "data_seed": args.seed}


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


def cmd_train(args: argparse.Namespace) -> None:
    from mpenv.checkpoint import load_config

    if args.model in IMPLICIT_MODELS and not args.resume:
        return train_implicit_model(args)
    from mpenv.logger import make_run_dir
    from vision3d.nerf.train import NeRFConfig, preset, train_nerf

    if args.resume:
        saved = load_config(args.resume)
        data = saved["data"]
        config = NeRFConfig(**{k: v for k, v in saved["nerf"].items() if k in NeRFConfig.__dataclass_fields__})
        if args.steps is not None:
            config.steps = args.steps
        run_dir = Path(args.resume)
    else:
        if args.model not in NERF_MODELS:
            raise SystemExit(f"unknown model {args.model!r}; choose one of {', '.join(NERF_MODELS + IMPLICIT_MODELS)}")
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
    train, test = scene_views(data["scene"], data["views"], data["test_views"], data["resolution"],
                              data["data_seed"], data["specular"])
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


def cmd_eval(args: argparse.Namespace) -> None:
    from vision3d.nerf.train import evaluate

    if _model_of(args.run_dir) in IMPLICIT_MODELS:
        from vision3d.implicit.runs import load_implicit, surface_report

        config, network = load_implicit(args.run_dir)
        report, _ = surface_report(config["model"], network, config["data"]["scene"])
        print(json.dumps({"scene": config["data"]["scene"], "model": config["model"],
                          **{k: round(v, 5) for k, v in report.items()}}))
        return

    config, nerf_config, field_, grid = _load_run(args.run_dir)
    data = config["data"]
    _, test = scene_views(data["scene"], data["views"], data["test_views"], data["resolution"], data["data_seed"],
                          data["specular"])
    result = evaluate(field_, test, nerf_config, grid)
    print(json.dumps({"scene": data["scene"], "model": config["model"], "test_views": len(test),
                      "psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4)}))


def _renderer(run_dir: str):
    """``(image size, camera -> image [H, W, 3])`` of a NeRF or DVR run."""
    import torch

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpenv-3d", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("scenes", help="list the scene library").set_defaults(func=cmd_scenes)

    t = commands.add_parser("train", help="train a model on a scene; writes a run directory")
    t.add_argument("model", nargs="?", help=f"one of: {', '.join(NERF_MODELS + IMPLICIT_MODELS)}")
    t.add_argument("--scene", default="blocks", help="a library scene (mpenv-3d scenes)")
    t.add_argument("--views", type=int, default=40, help="training views on the upper hemisphere (NeRF, DVR)")
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
    t.add_argument("--seed", type=int, default=0, help="seed of the network, the batches and the training views")
    t.add_argument("--logdir", default="runs", help="where the run directory is made")
    t.add_argument("--resume", default=None, help="continue this run directory")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = commands.add_parser("eval", help="PSNR and SSIM of a run on its held-out views")
    e.add_argument("run_dir")
    e.set_defaults(func=cmd_eval)

    r = commands.add_parser("render", help="a turntable video (.mp4/.gif) or one view (.png) of a trained run")
    r.add_argument("run_dir")
    r.add_argument("--out", default="turntable.mp4")
    r.add_argument("--frames", type=int, default=60)
    r.add_argument("--fps", type=int, default=20)
    r.add_argument("--elevation", type=float, default=25.0, help="camera elevation in degrees")
    r.add_argument("--resolution", type=int, default=None, help="frame size (default: the training resolution)")
    r.set_defaults(func=cmd_render)

    m = commands.add_parser("mesh", help="marching cubes of a trained field's density")
    m.add_argument("run_dir")
    m.add_argument("--out", default="scene.ply", help=".ply or .obj")
    m.add_argument("--resolution", type=int, default=128)
    m.add_argument("--density", type=float, default=10.0, help="the density level set that is meshed")
    m.set_defaults(func=cmd_mesh)
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
