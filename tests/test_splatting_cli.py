"""``mpenv-3d`` on Gaussian splatting runs: train (box, surface and .ply initializations, resume), eval against
evaluate_gaussians, render (.png, .gif, .mp4, and a .ply in place of a run), export to the 3DGS .ply layout, and
clear errors. Runs are tiny (16 pixels, 200 Gaussians, 20 steps): this file checks the plumbing, not learning."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from mpenv.checkpoint import load_torch
from vision3d.cli import main
from vision3d.scenes import orbit_cameras
from vision3d.scenes.library import scene_views
from vision3d.splatting.gaussians import Gaussians, load_ply
from vision3d.splatting.render import render_gaussians
from vision3d.splatting.train import evaluate_gaussians, surface_gaussians

# No densification: the set stays the 200 Gaussians the run starts from (the schedule scaled to 20 steps would
# densify and reset from the first steps).
TINY = ["--scene", "sphere", "--views", "4", "--test-views", "2", "--resolution", "16", "--steps", "20",
        "--initial-gaussians", "200", "--eval-every", "10", "--no-densify", "--no-progress"]  # fmt: skip


def only_run(logdir: Path) -> Path:
    (run_dir,) = [path for path in logdir.iterdir() if path.is_dir()]
    return run_dir


def checkpoint_gaussians(run_dir: Path) -> Gaussians:
    return Gaussians(**load_torch(run_dir, required=("gaussians",))["gaussians"]).check()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    """One box-initialized run shared by the tests that only read it, and the summary line it printed."""
    logdir = tmp_path_factory.mktemp("runs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "gaussians", *TINY, "--logdir", str(logdir)])
    return only_run(logdir), out.getvalue()


def test_a_trained_run_has_its_files_and_eval_is_evaluate_gaussians(run, capsys):
    run_dir, summary = run
    assert (run_dir / "checkpoint.pt").is_file() and list(run_dir.glob("events.out.tfevents.*"))
    assert run_dir.name.startswith("sphere__gaussians__0__")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "gaussians"
    assert config["data"] == {"scene": "sphere", "views": 4, "test_views": 2, "resolution": 16, "specular": 0.0,
                              "data_seed": 0, "init": "box"}
    assert config["gaussians"]["steps"] == 20 and config["gaussians"]["initial_gaussians"] == 200
    assert "gaussians on sphere: step 20, held-out PSNR" in summary and "200 Gaussians" in summary, summary

    main(["eval", str(run_dir)])
    report = json.loads(capsys.readouterr().out)
    gaussians = checkpoint_gaussians(run_dir)
    _, test = scene_views("sphere", 4, 2, 16, 0)
    # The SH bands open every 3 steps on the 3,000-step schedule scaled to 20 (sh_interval 500 x 20 / 3000): all
    # are open at step 20, and the run is measured at degree 3.
    assert config["gaussians"]["sh_interval"] == 3
    expected = evaluate_gaussians(gaussians, test, sh_degree=3)
    assert report["scene"] == "sphere" and report["model"] == "gaussians" and report["test_views"] == 2
    assert report["gaussians"] == len(gaussians) == 200 and report["sh_degree"] == 3
    assert report["psnr"] == pytest.approx(expected["psnr"], abs=5e-4)
    assert report["ssim"] == pytest.approx(expected["ssim"], abs=5e-5)
    history = load_torch(run_dir, required=("history",))["history"]
    assert [entry["step"] for entry in history] == [10, 20]
    assert report["psnr"] == pytest.approx(history[-1]["psnr"], abs=5e-4)  # the run's own last evaluation


def test_export_writes_the_checkpoint_and_init_from_the_file_starts_there(run, tmp_path, capsys):
    run_dir, _ = run
    ply = tmp_path / "scene.ply"
    main(["export", str(run_dir), "--out", str(ply)])
    assert capsys.readouterr().out.strip() == f"wrote {ply}: 200 Gaussians, SH degree 3"
    saved, loaded = checkpoint_gaussians(run_dir), load_ply(ply)
    for name, tensor in saved.parameters().items():
        torch.testing.assert_close(getattr(loaded, name), tensor.float(), rtol=0, atol=0)

    # Another seed and no --initial-gaussians (default 4000): only the file can give 200 Gaussians near its means.
    logdir = tmp_path / "from_ply"
    tiny = [arg for arg in TINY if arg not in ("--initial-gaussians", "200")]
    main(["train", "gaussians", *tiny, "--steps", "1", "--eval-every", "1", "--seed", "1", "--init", str(ply),
          "--logdir", str(logdir)])
    assert "gaussians on sphere: step 1, held-out PSNR" in capsys.readouterr().out
    started = only_run(logdir)
    config = json.loads((started / "config.json").read_text())
    assert config["data"]["init"] == str(ply.resolve())
    assert config["gaussians"]["initial_gaussians"] == 200 and config["gaussians"]["sh_degree"] == 3
    after_one_step = checkpoint_gaussians(started)
    assert len(after_one_step) == 200
    torch.testing.assert_close(after_one_step.means, loaded.means, rtol=0, atol=1e-2)  # one Adam step of ~7e-4

    with pytest.raises(SystemExit) as exit_:  # the file holds degree 3; asking for 1 is refused before any work
        main(["train", "gaussians", *TINY, "--init", str(ply), "--sh-degree", "1", "--logdir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "SH degree 3" in err and "--sh-degree" in err, err
    assert not (tmp_path / "x").exists()


def test_init_surface_starts_on_the_exact_surface(tmp_path, capsys):
    main(["train", "gaussians", *TINY, "--init", "surface", "--sh-degree", "1", "--logdir", str(tmp_path)])
    assert "200 Gaussians" in capsys.readouterr().out
    run_dir = only_run(tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["init"] == "surface" and config["gaussians"]["sh_degree"] == 1
    trained, start = checkpoint_gaussians(run_dir), surface_gaussians("sphere", 200, sh_degree=1, seed=0)
    assert trained.sh_degree == 1 and len(trained) == 200
    torch.testing.assert_close(trained.means, start.means, rtol=0, atol=2e-2)  # 20 small steps from the surface
    assert torch.allclose(start.means.norm(dim=1), torch.tensor(0.8), atol=1e-4)  # the sphere scene's radius


def test_render_writes_frames_of_a_run_and_of_a_ply(run, tmp_path, capsys):
    run_dir, _ = run
    main(["render", str(run_dir), "--out", str(tmp_path / "view.png")])
    frame = np.asarray(imageio.imread(tmp_path / "view.png"))
    assert frame.shape == (16, 16, 3)
    camera = orbit_cameras(1, elevation_degrees=25.0, width=16, height=16)[0]
    expected = render_gaussians(checkpoint_gaussians(run_dir), camera, torch.ones(3), sh_degree=3).image
    np.testing.assert_allclose(frame / 255, expected.clamp(0, 1).numpy(), atol=0.51 / 255)
    assert frame.mean() > 100  # mostly the white background around a few Gaussians

    main(["render", str(run_dir), "--out", str(tmp_path / "turn.gif"), "--frames", "3"])
    assert len(imageio.mimread(tmp_path / "turn.gif")) == 3
    main(["render", str(run_dir), "--out", str(tmp_path / "turn.mp4"), "--frames", "4", "--resolution", "24"])
    movie = imageio.mimread(tmp_path / "turn.mp4")
    assert len(movie) == 4 and np.asarray(movie[0]).shape == (24, 24, 3)
    assert "wrote" in capsys.readouterr().out

    ply = tmp_path / "scene.ply"
    main(["export", str(run_dir), "--out", str(ply)])
    main(["render", str(ply), "--out", str(tmp_path / "ply.png")])  # no run: the default 128 pixels
    assert np.asarray(imageio.imread(tmp_path / "ply.png")).shape == (128, 128, 3)


def test_resume_extends_a_run_from_20_to_30_steps(run, tmp_path, capsys):
    run_dir = Path(shutil.copytree(run[0], tmp_path / run[0].name))
    main(["train", "--resume", str(run_dir), "--steps", "30", "--no-progress"])
    assert "gaussians on sphere: step 30, held-out PSNR" in capsys.readouterr().out
    state = load_torch(run_dir, required=("step", "history"))
    assert state["step"] == 30 and [entry["step"] for entry in state["history"]] == [10, 20, 30]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["gaussians"]["steps"] == 30 and config["data"]["init"] == "box"
    assert [path for path in tmp_path.iterdir() if path.is_dir()] == [run_dir]  # no new run directory


def test_the_wrong_input_exits_with_a_clear_message(run, tmp_path, capsys):
    run_dir, _ = run
    with pytest.raises(SystemExit, match="export"):
        main(["mesh", str(run_dir), "--out", str(tmp_path / "mesh.ply")])
    with pytest.raises(SystemExit) as exit_:  # a directory that is no run
        main(["eval", str(tmp_path)])
    assert exit_.value.code == 2 and "config.json" in capsys.readouterr().err

    other = tmp_path / "igr_run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model": "igr"}))
    with pytest.raises(SystemExit, match="igr_run: not a Gaussian splatting run"):
        main(["export", str(other), "--out", str(tmp_path / "x.ply")])
    with pytest.raises(SystemExit, match="igr_run: not a Gaussian splatting run"):
        main(["train", "gaussians", "--resume", str(other)])

    broken = Path(shutil.copytree(run_dir, tmp_path / "broken"))
    state = load_torch(broken, required=())
    del state["gaussians"]["sh"]
    torch.save(state, broken / "checkpoint.pt")
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(broken)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "broken/checkpoint.pt" in err and "'sh'" in err, err

    for bad in (["train", "gaussians", "--init", "sphere"], ["train", "gaussians", "--init", "missing.ply"],
                ["export", str(run_dir), "--out", str(tmp_path / "scene.obj")]):
        with pytest.raises(SystemExit) as exit_:
            main(bad)
        assert exit_.value.code == 2, bad
    err = capsys.readouterr().err
    assert "expected box or surface or a .ply file" in err and "missing.ply: no such .ply file" in err, err
    assert "--out must be a .ply file" in err
    ply = tmp_path / "scene.ply"
    main(["export", str(run_dir), "--out", str(ply)])
    with pytest.raises(SystemExit, match="no held-out views"):
        main(["eval", str(ply)])
