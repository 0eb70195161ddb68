"""NeRF end to end: image metrics against scikit-image, the renderer on an exact density field against the exact
renderer, checkpoints that resume bit for bit, the CLI, and learning bars on exact scenes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from vision3d.image_metrics import psnr, ssim, ssim_map
from vision3d.nerf.model import RadianceField
from vision3d.nerf.rendering import RenderResult
from vision3d.nerf.train import (
    ASSETS,
    NeRFConfig,
    annealing,
    central_pixels,
    color_consistency_loss,
    distortion_loss,
    evaluate,
    load_field,
    preset,
    render_image,
    render_rays,
    train_nerf,
)
from vision3d.scenes import hemisphere_cameras, make_scene, orbit_cameras, pixel_rays, render, render_views
from vision3d.scenes.cameras import sphere_bounds
from vision3d.scenes.library import scene_views


def test_psnr_and_ssim_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    g = torch.Generator().manual_seed(0)
    target = torch.rand(40, 36, 3, generator=g)
    noisy = (target + 0.1 * torch.randn(40, 36, 3, generator=g)).clamp(0, 1)
    assert psnr(noisy, target) == pytest.approx(peak_signal_noise_ratio(target.numpy(), noisy.numpy(), data_range=1))
    expected = structural_similarity(target.numpy(), noisy.numpy(), channel_axis=-1, data_range=1.0,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(noisy, target) == pytest.approx(expected, abs=1e-6)
    assert ssim(target, target) == pytest.approx(1.0) and psnr(target, target) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(target, target[:-1])
    with pytest.raises(ValueError, match="window"):
        ssim(target[:8, :8], target[:8, :8])
    # The map behind it keeps the images' dtype and is differentiable (Gaussian splatting's D-SSIM loss).
    single = ssim_map(noisy, target)
    assert single.dtype == torch.float32 and single.shape == (3, 30, 26)
    assert single.mean().item() == pytest.approx(expected, abs=1e-5)
    small = (noisy[:12, :12, :1].double().requires_grad_(), target[:12, :12, :1].double())
    assert torch.autograd.gradcheck(lambda x: ssim_map(x, small[1]).mean(), (small[0],))


def test_sphere_bounds_are_where_rays_cross_the_sphere():
    origins, directions = pixel_rays(orbit_cameras(1, width=16, height=16)[0])
    near, far = sphere_bounds(origins, directions, 1.0)
    crossing = far - near > 1e-2
    for t in (near, far):
        points = origins[crossing] + t[crossing, None] * directions[crossing]
        torch.testing.assert_close(points.norm(dim=-1), torch.ones(int(crossing.sum()), dtype=torch.float64))
    assert (~crossing).any() and ((far - near)[~crossing] <= 1e-3 + 1e-12).all()


class ExactField(nn.Module):
    """A radiance field that *is* the scene: a very dense medium inside the shape with the shape's shaded colour."""

    def __init__(self, scene, density: float = 2000.0):
        super().__init__()
        self.scene, self.sigma = scene, density
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, d):
        from vision3d.scenes.rendering import shade

        x64 = x.double()
        inside = self.scene.shape.sdf(x64) < 0
        color = shade(self.scene, x64, self.scene.shape.normal(x64), d.double())
        return (self.sigma * inside).float() + 0 * self.dummy, color.float()


def test_volume_rendering_an_exact_density_reproduces_the_exact_render():
    scene = make_scene("blocks")
    camera = orbit_cameras(1, width=32, height=32, start_degrees=40)[0]
    exact = render(scene, camera)
    config = NeRFConfig(n_samples=256, scene_radius=1.3)
    image, depth = render_image(ExactField(scene), camera, config, torch.ones(3))
    opacity_agrees = ((image - 1).abs().sum(-1) > 1e-3) == exact.mask
    assert opacity_agrees.double().mean() > 0.97  # only silhouette pixels may disagree at 256 samples
    spacing = 2 * 1.3 / 256
    inner = exact.mask & opacity_agrees
    assert (depth[inner] - exact.depth[inner].float()).abs().median() < spacing


def test_hierarchical_samples_find_the_surface_the_coarse_samples_straddle():
    """Through the training renderer: 32 coarse samples place an exact surface to about their spacing (0.08;
    median error measured 0.031); 64 fine samples drawn from the coarse weights place it 25x closer (0.0012), and
    render_image returns the fine render."""
    scene = make_scene("blocks")
    camera = orbit_cameras(1, width=32, height=32, start_degrees=40)[0]
    exact = render(scene, camera)
    origins, directions = (x.float() for x in pixel_rays(camera))
    config = NeRFConfig(n_samples=32, n_importance=64, scene_radius=1.3)
    coarse, fine = render_rays(ExactField(scene), origins, directions, config, torch.ones(3))
    assert fine.t.shape == (32 * 32, 96) and (fine.t.diff(dim=-1) >= 0).all()
    hit = exact.mask.reshape(-1) & (coarse.opacity > 0.99) & (fine.opacity > 0.99)
    assert hit.double().mean() > 0.9 * exact.mask.double().mean()
    exact_depth = exact.depth.reshape(-1)[hit].float()
    coarse_error = (coarse.depth[hit] - exact_depth).abs().median()
    fine_error = (fine.depth[hit] - exact_depth).abs().median()
    spacing = 2 * 1.3 / 32
    assert coarse_error > spacing / 8 and fine_error < coarse_error / 3 and fine_error < spacing / 8
    _, depth = render_image(ExactField(scene), camera, config, torch.ones(3))
    torch.testing.assert_close(depth.reshape(-1), fine.depth)


def small_views(scene_name: str, n_train: int, size: int = 32, seed: int = 0):
    scene = make_scene(scene_name)
    train = render_views(scene, hemisphere_cameras(n_train, seed=seed, width=size, height=size))
    test = render_views(scene, orbit_cameras(3, elevation_degrees=25, start_degrees=30, width=size, height=size))
    return train, test


def test_annealing_schedules_and_the_sample_span(monkeypatch):
    config = preset("nerf", sample_annealing=100, sample_annealing_start=0.5, frequency_annealing=200)
    assert annealing(0, config) == (0.5, 0.0)
    assert annealing(50, config) == (0.75, 1.5)  # 6 octaves open over 200 steps
    assert annealing(100, config) == (1.0, 3.0) and annealing(400, config) == (1.0, 6.0)
    assert annealing(10, preset("nerf")) == (1.0, 6.0)  # off by default
    # A half span keeps the samples in the middle half of each ray's chord through the scene sphere.
    origins = torch.tensor([[0.0, 0.0, -3.0], [0.3, 0.2, -3.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    near, far = sphere_bounds(origins, directions, config.scene_radius)
    seen = {}

    def spy(field_, sigma_points, directions_, grid):
        seen["t"] = (sigma_points - origins[:, None]).norm(dim=-1)
        return torch.zeros(sigma_points.shape[:2]), torch.zeros(*sigma_points.shape[:2], 3)

    import vision3d.nerf.train as nerf_train

    monkeypatch.setattr(nerf_train, "_query", spy)
    render_rays(nn.Identity(), origins, directions, config, torch.ones(3), span=0.5)
    quarter = ((far - near) / 4)[:, None]
    assert (seen["t"] >= near[:, None] + quarter - 1e-5).all() and (seen["t"] <= far[:, None] - quarter + 1e-5).all()
    with pytest.raises(ValueError, match="frequency_annealing"):
        preset("hash-nerf", frequency_annealing=10)
    with pytest.raises(ValueError, match="sample_annealing_start"):
        preset("nerf", sample_annealing_start=0.0)


def test_distortion_loss_equals_its_double_sum():
    generator = torch.Generator().manual_seed(0)
    t = torch.sort(1 + 2 * torch.rand(5, 7, generator=generator, dtype=torch.float64), dim=-1).values
    weights = torch.rand(5, 7, generator=generator, dtype=torch.float64) / 7
    near, far = torch.full((5,), 1.0, dtype=torch.float64), torch.full((5,), 3.0, dtype=torch.float64)
    result = RenderResult(rgb=torch.zeros(5, 3), depth=torch.zeros(5), opacity=weights.sum(-1), weights=weights, t=t)
    expected = 0.0
    for ray in range(5):
        edges = [(float(x) - 1) / 2 for x in t[ray]] + [1.0]
        w = weights[ray].tolist()
        expected += sum(w[i] * w[j] * abs((edges[i] + edges[i + 1]) / 2 - (edges[j] + edges[j + 1]) / 2)
                        for i in range(7) for j in range(7))
        expected += sum(w[i] ** 2 * (edges[i + 1] - edges[i]) for i in range(7)) / 3
    assert distortion_loss(result, near, far).item() == pytest.approx(expected / 5, rel=1e-12)
    # All the weight in one segment of a tenth of the ray: only the within term, w^2 l / 3.
    one = torch.zeros(1, 7, dtype=torch.float64)
    one[0, 3] = 1.0
    t_even = torch.linspace(1, 3, 11, dtype=torch.float64)[:7][None]
    single = RenderResult(rgb=torch.zeros(1, 3), depth=torch.zeros(1), opacity=torch.ones(1), weights=one, t=t_even)
    assert distortion_loss(single, near[:1], far[:1]).item() == pytest.approx(0.1 / 3, rel=1e-12)


def test_color_consistency_loss_is_the_weighted_colour_change_between_two_random_views():
    torch.manual_seed(0)
    field_ = RadianceField(hidden=32, depth=2, color_hidden=16).double()
    points = torch.randn(4, 6, 3, dtype=torch.float64)
    weights = torch.rand(4, 6, dtype=torch.float64)
    loss = color_consistency_loss(field_, points, weights, torch.Generator().manual_seed(3))
    # The same two directions per point, drawn by hand, and the colours through the field's full forward pass.
    d1, d2 = torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(3)).double()
    d1, d2 = d1 / d1.norm(dim=-1, keepdim=True), d2 / d2.norm(dim=-1, keepdim=True)
    flat = points.reshape(-1, 3)
    with torch.no_grad():
        expected = sum(float(w) * float((field_(x[None], a[None])[1] - field_(x[None], b[None])[1]).square().sum())
                       for x, a, b, w in zip(flat, d1, d2, weights.reshape(-1), strict=True)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    # A field whose colour ignores the direction pays nothing, and the loss moves only the colour branch's
    # dependence on direction: the density head gets no gradient.
    with torch.no_grad():
        field_.color_head[0].weight[:, 32:] = 0
    blind = color_consistency_loss(field_, points, weights, torch.Generator().manual_seed(3))
    assert blind.item() == pytest.approx(0.0, abs=1e-12)
    field_.zero_grad()
    loss = color_consistency_loss(field_, points, weights, torch.Generator().manual_seed(4))
    loss.backward()
    assert field_.density_head.weight.grad is None or field_.density_head.weight.grad.abs().max() == 0
    with pytest.raises(ValueError, match="color_consistency"):
        preset("nerf", color_consistency=-1.0)


def test_resuming_a_checkpoint_that_does_not_fit_names_the_file(tmp_path):
    from mpenv.checkpoint import CheckpointError

    train, test = small_views("sphere", 2, size=12)
    train_nerf(train, test, preset("nerf", steps=2, batch_rays=16, n_samples=8), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: weights do not fit"):
        train_nerf(train, test, preset("nerf", steps=4, hidden=32, batch_rays=16, n_samples=8), run_dir=tmp_path,
                   resume=True)


def test_a_checkpoint_resumes_to_the_same_weights_and_ctrl_c_keeps_it(tmp_path, monkeypatch):
    # Bit-identical only on one thread (conftest pins it): the hash table's backward adds gradients in thread order.
    train, test = small_views("sphere", 6, size=16)
    config = preset("hash-nerf", steps=12, batch_rays=64, n_samples=16, eval_every=6, checkpoint_every=4)
    straight = train_nerf(train, test, config, run_dir=tmp_path / "straight")

    import vision3d.nerf.train as nerf_train

    real_render_rays, calls = nerf_train.render_rays, {"n": 0}

    def interrupt_at_step_7(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_render_rays(*args, **kwargs)

    monkeypatch.setattr(nerf_train, "render_rays", interrupt_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train_nerf(train, test, config, run_dir=tmp_path / "resumed")
    monkeypatch.setattr(nerf_train, "render_rays", real_render_rays)
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 6  # the last completed step, not the interrupted one
    resumed = train_nerf(train, test, config, run_dir=tmp_path / "resumed", resume=True)
    for a, b in zip(straight.field.parameters(), resumed.field.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [h["step"] for h in resumed.history] == [6, 12]
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["nerf"]["steps"] == 12
    assert list((tmp_path / "straight").glob("events.out.tfevents.*"))


def test_the_cli_trains_evaluates_and_renders(tmp_path, capsys):
    from vision3d.cli import main

    main(["train", "hash-nerf", "--scene", "sphere", "--views", "4", "--test-views", "2", "--resolution", "16",
          "--steps", "20", "--batch-rays", "64", "--samples", "16", "--color-consistency", "0.1",
          "--precrop", "5", "--logdir", str(tmp_path), "--no-progress"])
    (run_dir,) = tmp_path.iterdir()
    assert "held-out PSNR" in capsys.readouterr().out
    recorded = json.loads((run_dir / "config.json").read_text())["nerf"]
    assert recorded["color_consistency"] == 0.1 and recorded["precrop_steps"] == 5
    main(["eval", str(run_dir)])
    report = json.loads(capsys.readouterr().out)
    assert report["scene"] == "sphere" and math.isfinite(report["psnr"])
    main(["render", str(run_dir), "--out", str(tmp_path / "frames.gif"), "--frames", "3"])
    main(["render", str(run_dir), "--out", str(tmp_path / "view.png")])
    import imageio.v2 as imageio

    assert np.asarray(imageio.imread(tmp_path / "view.png")).shape == (16, 16, 3)
    capsys.readouterr()
    main(["train", "--resume", str(run_dir), "--steps", "30", "--no-progress"])  # extends the run to 30 steps
    assert "hash-nerf on sphere: step 30" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["nerf"]["steps"] == 30
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == 30
    with pytest.raises(SystemExit) as exit_:  # 30 steps leave the density nearly flat, far below 50
        main(["mesh", str(run_dir), "--out", str(tmp_path / "scene.ply"), "--resolution", "12", "--density", "50"])
    assert exit_.value.code == 2 and "no surface at level 50" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "teapot-nerf"])
    with pytest.raises(SystemExit) as exit_:
        main(["train", "hash-nerf", "--scene", "sphere", "--frequency-annealing", "10", "--logdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("mpenv-3d: error: ") and "frequency_annealing" in err, err
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == [run_dir]  # the refused run made no directory


def test_central_pixels_are_the_middle_of_every_view():
    train, _ = small_views("sphere", 3, size=8)
    expected = [v * 64 + row * 8 + column for v in range(3) for row in range(2, 6) for column in range(2, 6)]
    assert central_pixels(train, 0.5).tolist() == expected
    assert central_pixels(train, 1.0).tolist() == list(range(3 * 64))
    with pytest.raises(ValueError, match="precrop_fraction"):
        preset("nerf", precrop_fraction=0.0)


def test_the_body_scene_trains_with_a_central_crop_first():
    """The SMPL-style body covers 8% of its 32x32 views: without the central crop the positional-encoding NeRF
    empties its field in its first 20 steps and renders white (14.35 dB); cropping the first 100 steps, as NeRF's
    code does for its synthetic scenes, it learns the person: measured 23.4 dB and silhouette IoU 0.77-0.82
    after 600 steps (at 300 the silhouette is still twice too wide, IoU 0.35-0.45); bars 22 dB and 0.7 on each view.
    The field is the one ``benchmarks/nerf_assets.py body20`` trains, the recipe this test ran in CI (about 3.5
    CPU-minutes), shipped with its TensorBoard events in vision3d/nerf/assets/body20_nerf."""
    _, test = scene_views("body", 1, 3, 32, seed=0)  # the held-out views do not depend on the training views
    config, field_, history = load_field(ASSETS / "body20_nerf")
    assert asdict(config) == asdict(preset("nerf", steps=600, batch_rays=512, eval_every=600, checkpoint_every=600,
                                           precrop_steps=100))
    measured = evaluate(field_, test, config)["psnr"]
    assert measured == pytest.approx(history[-1]["psnr"], abs=1e-4)  # the weights the run measured at its end
    assert measured >= 22.0, measured
    for camera, exact_mask in zip(test.cameras, test.mask, strict=True):
        origins, directions = (x.float() for x in pixel_rays(camera))
        with torch.no_grad():
            result, _ = render_rays(field_, origins, directions, config, torch.ones(3))
        silhouette = result.opacity.reshape(32, 32) > 0.5
        iou = (silhouette & exact_mask).sum() / (silhouette | exact_mask).sum()
        assert iou >= 0.7, iou


def held_out_views(scene_name: str = "blocks", size: int = 32):
    """The held-out views of :func:`small_views` alone."""
    return render_views(make_scene(scene_name),
                        orbit_cameras(3, elevation_degrees=25, start_degrees=30, width=size, height=size))


def test_the_shipped_positional_encoding_nerf_learned_a_scene():
    """Learning bar at 32x32 (measured 22.75 dB; the issue's 25 dB at 64x64 is measured by
    benchmarks/bench_nerf.py) on the field ``benchmarks/nerf_assets.py blocks30`` trains: the recipe this test ran
    in CI (30 views, 600 steps of 512 rays, about 3.5 CPU-minutes), shipped with its TensorBoard events in
    vision3d/nerf/assets/blocks30_nerf; the test below keeps checking that training learns. The density's level set
    10 (marching cubes, 64^3) is within Chamfer-L1 0.075 of the exact surface (measured 0.050; blocks spans 1.5
    units, and 600 steps of 32x32 views leave the geometry coarse)."""
    from vision3d.implicit import chamfer_distance, extract_mesh
    from vision3d.scenes import sample_mesh_surface, surface_samples

    config, field_, history = load_field(ASSETS / "blocks30_nerf")
    assert asdict(config) == asdict(preset("nerf", steps=600, batch_rays=512, eval_every=600, checkpoint_every=600))
    assert history[-1]["step"] == 600
    measured = evaluate(field_, held_out_views(), config)["psnr"]
    assert measured == pytest.approx(history[-1]["psnr"], abs=1e-4)  # the weights the run measured at its end
    assert measured >= 22.0, measured
    with torch.no_grad():
        mesh = extract_mesh(field_.density, bounds=(-1.3, 1.3), resolution=64, level=10.0, inside="positive")
    points, _ = sample_mesh_surface(mesh.vertices, mesh.faces, 20_000, seed=0)
    chamfer = chamfer_distance(points, surface_samples(make_scene("blocks").shape, 20_000, seed=1).points)
    assert chamfer.l1 < 0.075, chamfer


def test_positional_encoding_nerf_starts_learning_a_scene():
    """Training itself, in seconds: 100 steps of 256 rays on the 30 views lift the held-out PSNR from 7.3 dB
    (untrained; a white image scores 7.5) to 12.4 (seeds 1, 2: 12.3, 12.4); bar 11 dB."""
    train, test = small_views("blocks", 30)
    run = train_nerf(train, test, preset("nerf", steps=100, batch_rays=256, eval_every=100))
    assert run.history[-1]["psnr"] >= 11.0, run.history


def test_the_colour_prior_beats_no_prior_on_four_views():
    """The issue's sparse-view bar, on the same budget for both: 4 training views of blocks at 32x32, 400 steps of
    256 rays, 3 held-out orbit views. Measured 15.69 dB without a prior and 16.95 with colour consistency 0.1
    (seed 1, before the fields were shipped: 15.33 and 16.76); benchmarks/bench_nerf.py --parts sparse compares
    them after 1,500 steps. The two fields are the ones ``benchmarks/nerf_assets.py blocks4`` and ``blocks4-prior``
    train, the recipes this test ran in CI (about 3 CPU-minutes), shipped in vision3d/nerf/assets/ with their
    TensorBoard events; the colour prior's training is exercised by the CLI test above and its loss checked by the
    test of color_consistency_loss."""
    test = held_out_views()
    psnr_of = {}
    for name, weight in (("blocks4_nerf", 0.0), ("blocks4_nerf_prior", 0.1)):
        config, field_, history = load_field(ASSETS / name)
        assert asdict(config) == asdict(preset("nerf", steps=400, batch_rays=256, eval_every=400,
                                               checkpoint_every=400, color_consistency=weight))
        psnr_of[weight] = evaluate(field_, test, config)["psnr"]
        assert psnr_of[weight] == pytest.approx(history[-1]["psnr"], abs=1e-4)
    assert psnr_of[0.1] >= psnr_of[0.0] + 0.75, psnr_of


def test_the_cli_trains_evaluates_and_meshes_implicit_models(tmp_path, capsys):
    from vision3d.cli import main

    main(["train", "igr", "--scene", "sphere", "--points", "500", "--steps", "30", "--logdir", str(tmp_path),
          "--no-progress"])
    (run_dir,) = tmp_path.iterdir()
    assert "chamfer_l1" in capsys.readouterr().out
    main(["eval", str(run_dir)])
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "igr" and 0 <= report["iou"] <= 1 and report["chamfer_l1"] < 0.2
    main(["mesh", str(run_dir), "--out", str(tmp_path / "sphere.ply"), "--resolution", "32"])
    from vision3d.scenes import load_mesh

    assert len(load_mesh(tmp_path / "sphere.ply").faces) > 100
    with pytest.raises(SystemExit, match="mesh"):
        main(["render", str(run_dir), "--out", str(tmp_path / "x.png")])
    main(["train", "dvr", "--scene", "sphere", "--views", "3", "--resolution", "12", "--steps", "5",
          "--batch-rays", "64", "--logdir", str(tmp_path / "dvr"), "--no-progress"])
    (dvr_dir,) = (tmp_path / "dvr").iterdir()
    main(["render", str(dvr_dir), "--out", str(tmp_path / "dvr.png")])
