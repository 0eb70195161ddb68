"""Train the positional-encoding NeRFs shipped in ``vision3d/nerf/assets/`` (what the learning bars in
``tests/test_nerf_training.py`` check; :func:`vision3d.nerf.train.load_field` loads them).

    python benchmarks/nerf_assets.py blocks30         # -> vision3d/nerf/assets/blocks30_nerf/        (~3.5 CPU-min)
    python benchmarks/nerf_assets.py blocks4          # -> vision3d/nerf/assets/blocks4_nerf/         (~1 CPU-min)
    python benchmarks/nerf_assets.py blocks4-prior    # -> vision3d/nerf/assets/blocks4_nerf_prior/   (~2 CPU-min)
    python benchmarks/nerf_assets.py body20           # -> vision3d/nerf/assets/body20_nerf/          (~3.5 CPU-min)

The recipes are the ones the learning tests used to run in CI, call for call (on one CPU thread the weights are
the ones those tests trained): the ``nerf`` preset at 32x32; ``blocks`` with training views
``hemisphere_cameras(n, seed=0)`` and held-out views ``orbit_cameras(3, elevation_degrees=25, start_degrees=30)``:
``blocks30``: 30 views, 600 steps of 512 rays; ``blocks4``: 4 views, 400 steps of 256 rays, and ``blocks4-prior``
the same with colour consistency 0.1; ``body20``: the SMPL-style body, ``scene_views("body", 20, 3, 32, seed=0)``
(the CLI's views), 600 steps of 512 rays, the first 100 on the central crops. Each folder is an ``mpenv-3d`` run
directory: ``config.json``, ``checkpoint.pt`` (the field's weights and the run's history only: no optimizer state,
so it cannot be resumed) and the TensorBoard events of the run. (``mpenv-3d eval`` measures the blocks runs on the
CLI's own orbit, ``start_degrees=60``.)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from mpenv.checkpoint import load_torch, save_torch
from vision3d.nerf.train import ASSETS, preset, train_nerf
from vision3d.scenes import hemisphere_cameras, make_scene, orbit_cameras, render_views
from vision3d.scenes.library import scene_views

RECIPES = {
    "blocks30": {"views": 30, "folder": "blocks30_nerf", "overrides": {"steps": 600, "batch_rays": 512}},
    "blocks4": {"views": 4, "folder": "blocks4_nerf", "overrides": {"steps": 400, "batch_rays": 256}},
    "blocks4-prior": {"views": 4, "folder": "blocks4_nerf_prior",
                      "overrides": {"steps": 400, "batch_rays": 256, "color_consistency": 0.1}},
    "body20": {"scene": "body", "views": 20, "folder": "body20_nerf",
               "overrides": {"steps": 600, "batch_rays": 512, "precrop_steps": 100}},
}


def blocks_views(n_train: int):
    """The tests' views (``small_views`` in tests/test_nerf_training.py)."""
    scene = make_scene("blocks")
    train = render_views(scene, hemisphere_cameras(n_train, seed=0, width=32, height=32))
    test = render_views(scene, orbit_cameras(3, elevation_degrees=25, start_degrees=30, width=32, height=32))
    return train, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=list(RECIPES))
    parser.add_argument("--out", default=None, help="output folder (default: vision3d/nerf/assets/<folder>)")
    args = parser.parse_args(argv)
    recipe = RECIPES[args.recipe]
    out = Path(args.out) if args.out else ASSETS / recipe["folder"]
    torch.set_num_threads(1)  # as in the tests (tests/conftest.py): the weights depend on the thread count
    scene = recipe.get("scene", "blocks")
    if scene == "body":
        train, test = scene_views("body", recipe["views"], 3, 32, seed=0)
    else:
        train, test = blocks_views(recipe["views"])
    steps = recipe["overrides"]["steps"]
    config = preset("nerf", eval_every=steps, checkpoint_every=steps, **recipe["overrides"])
    data = {"scene": scene, "views": recipe["views"], "test_views": 3, "resolution": 32,
            "data_seed": 0, "specular": 0.0}
    run_config = {"model": "nerf", "nerf": asdict(config), "data": data,
                  "made_by": f"python benchmarks/nerf_assets.py {args.recipe}", "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as scratch:
        run = train_nerf(train, test, config, run_dir=scratch, run_config=run_config)
        state = load_torch(scratch)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for path in Path(scratch).iterdir():
            if path.name != "checkpoint.pt":
                shutil.copy(path, out / path.name)
    save_torch(out, {"step": state["step"], "modules": {"field": state["modules"]["field"]},
                     "history": state["history"]})
    print(f"{args.recipe}: held-out PSNR {run.history[-1]['psnr']:.3f} dB -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
