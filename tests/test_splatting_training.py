"""vision3d.splatting.train: the loss, the scene extent, checkpoints that resume bit for bit through densification
and opacity resets, Ctrl-C keeping the last step, and a learning bar on held-out views of an exact scene."""

from __future__ import annotations

import pytest
import torch

from vision3d.image_metrics import ssim_map
from vision3d.scenes.library import scene_views
from vision3d.splatting.train import SplatConfig, config_for_steps, photometric_loss, scene_extent, train_gaussians


def tiny_config(**overrides) -> SplatConfig:
    settings = dict(steps=24, initial_gaussians=200, eval_every=12, checkpoint_every=12, densify_from=4,
                    densify_until=20, densify_every=4, opacity_reset_every=10, sh_interval=8, max_gaussians=2000,
                    grad_threshold=1e-5)
    return SplatConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def views():
    return scene_views("blocks", 6, 2, 16, seed=0)


def test_the_loss_and_the_extent():
    generator = torch.Generator().manual_seed(0)
    image, target = torch.rand(2, 16, 16, 3, generator=generator)
    expected = 0.8 * (image - target).abs().mean() + 0.2 * (1 - ssim_map(image, target).mean())
    torch.testing.assert_close(photometric_loss(image, target, 0.2), expected)
    small = photometric_loss(image[:8, :8], target[:8, :8], 0.2)  # below SSIM's window: L1 alone
    torch.testing.assert_close(small, (image - target)[:8, :8].abs().mean())
    train, _ = scene_views("sphere", 5, 1, 8, seed=0)
    centres = torch.stack([c.center for c in train.cameras])
    distances = (centres - centres.mean(0)).norm(dim=-1)
    assert scene_extent(train) == pytest.approx(1.1 * float(distances.max()))
    with pytest.raises(ValueError, match="sh_degree"):
        train_gaussians(train, train, tiny_config(sh_degree=4))
    with pytest.raises(ValueError, match="split_mode"):
        train_gaussians(train, train, tiny_config(split_mode="thirds"))


def test_the_schedule_scales_with_the_run_and_no_reset_comes_last():
    short = config_for_steps(300, seed=3)
    assert (short.densify_from, short.densify_until, short.densify_every, short.opacity_reset_every,
            short.sh_interval, short.eval_every, short.seed) == (20, 200, 10, 100, 50, 50, 3)
    assert config_for_steps(3000) == SplatConfig()
    with pytest.raises(ValueError, match="no field 'densify_after'"):
        config_for_steps(300, densify_after=5)


def test_ctrl_c_keeps_the_last_step_and_the_run_resumes_to_the_same_gaussians(tmp_path, views, monkeypatch):
    """Interrupted at step 15 (after a densification at 12 and the opacity reset at 10), resumed to 24 steps: the
    same Gaussians, bit for bit, as the run that was never stopped. The gradient statistics since the last
    densification, Adam's moments and the random state all come back from the checkpoint."""
    import vision3d.splatting.train as splat_train
    from mpenv.checkpoint import load_torch

    train, test = views
    whole = train_gaussians(train, test, tiny_config())
    assert whole.history[-1]["gaussians"] != 200  # densification and pruning happened in these 24 steps
    calls = {"n": 0}
    original = splat_train.photometric_loss

    def interrupt_at_step_16(*args):
        calls["n"] += 1
        if calls["n"] == 16:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(splat_train, "photometric_loss", interrupt_at_step_16)
    with pytest.raises(KeyboardInterrupt):
        train_gaussians(train, test, tiny_config(), run_dir=tmp_path / "run")
    monkeypatch.setattr(splat_train, "photometric_loss", original)
    assert load_torch(tmp_path / "run", required=("step",))["step"] == 15
    assert (tmp_path / "run" / "config.json").exists()
    resumed = train_gaussians(train, test, tiny_config(), run_dir=tmp_path / "run", resume=True)
    for name, tensor in whole.gaussians.parameters().items():
        torch.testing.assert_close(getattr(resumed.gaussians, name), tensor, rtol=0, atol=0)
    assert [h["psnr"] for h in resumed.history] == [h["psnr"] for h in whole.history]


def test_a_checkpoint_that_is_not_gaussians_names_the_file(tmp_path, views):
    from mpenv.checkpoint import save_torch

    train, test = views
    save_torch(tmp_path, {"step": 1, "gaussians": {"means": torch.zeros(2, 3)}, "optimizer": {}, "generator":
                          torch.Generator().get_state(), "history": []})
    with pytest.raises(ValueError, match="checkpoint.pt: the checkpoint does not hold"):
        train_gaussians(train, test, tiny_config(), run_dir=tmp_path, resume=True)


# The positional-encoding NeRF's learning test (tests/test_nerf_training.py) on the same 30 views of blocks at 32x32
# and the same 3 held-out orbit views: measured 22.8 dB after 600 steps of 512 rays, about 90 s of training in CI,
# when this bar was set; the field shipped in vision3d/nerf/assets/blocks30_nerf (that recipe) measures 22.75 dB.
NERF_HELD_OUT_PSNR = 22.8


@pytest.mark.slow
def test_gaussians_from_the_surface_beat_the_nerf_on_its_own_views():
    """The issue's bar: at least the positional-encoding NeRF's held-out PSNR on its views, in less training time.
    400 steps from 1,000 Gaussians on the scene's exact surface (the SfM points of the paper), the moment-matched
    split, densification every 10 steps from 30 to 300 and no opacity reset in so short a run. Measured 23.45 dB
    and SSIM 0.938 after 64 s of training (one of two busy cores; seeds 1, 2 at 300 steps: 22.89, 23.07 dB), with
    19k Gaussians; the bar is the NeRF's 22.8 dB. Random Gaussians in the box need longer: 21.5 dB at 300 steps."""
    from vision3d.scenes.cameras import hemisphere_cameras, orbit_cameras
    from vision3d.scenes.library import make_scene
    from vision3d.scenes.rendering import render_views
    from vision3d.splatting.train import surface_gaussians

    scene = make_scene("blocks")
    train = render_views(scene, hemisphere_cameras(30, seed=0, width=32, height=32))
    test = render_views(scene, orbit_cameras(3, elevation_degrees=25, start_degrees=30, width=32, height=32))
    config = SplatConfig(steps=400, initial_gaussians=1000, eval_every=400, densify_from=30, densify_until=300,
                         densify_every=10, opacity_reset_every=400, sh_interval=50, split_mode="moments")
    run = train_gaussians(train, test, config, initial=surface_gaussians("blocks", 1000, config.sh_degree))
    assert run.history[-1]["psnr"] >= NERF_HELD_OUT_PSNR and run.history[-1]["ssim"] >= 0.9, run.history
