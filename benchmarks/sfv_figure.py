"""The SFV pipeline's stages side by side, frame by frame (the README's docs/sfv_stages.gif and .mp4).

    python benchmarks/sfv_figure.py --clip cmu_walk --frames 45 --size 64 --out docs/sfv_stages.gif

A held-out clip (``cmu_walk``: neither the pose prior nor the 2D network saw it) is filmed by one static camera, 60
degrees off its start heading, at ``--size`` x ``--size`` pixels
(:func:`vision3d.body.video_fitting.render_motion_video`), and run through the pipeline of :mod:`vision3d.body.sfv`.
Each frame of the animation is a row of four panels, each upscaled to ``--panel`` pixels:

1. **input**: the rendered video frame (nearest-neighbour upscaling: the pixels the network saw);
2. **2D keypoints**: the shipped 2D pose network's 24 SMPL joints on that frame (dots, and the skeleton's bones
   from :data:`vision3d.body.skeleton.PARENTS`; left side red, right side blue, centre yellow);
3. **temporal fit**: the body mesh of :func:`~vision3d.body.video_fitting.fit_sequence` (one shape, smooth over
   time) in the camera frame, rasterized from the same camera over the dimmed input frame;
4. **humanoid**: the recovered Motion (:func:`~vision3d.body.video_fitting.sequence_to_motion`) converted for
   ``mpenv/HumanoidMimic-v0`` and replayed kinematically (the reference state set as ``qpos`` every frame, no
   physics step), rendered by MuJoCo offscreen from a fixed camera looking at the middle of the path, from
   about the side the input camera sees (``--azimuth``).

The GIF plays at ``--fps`` (default 15, half speed for a 30 fps clip); the MP4 beside it (same stem) too.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (offscreen, no display)

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vision3d.body.clips import load_clip
from vision3d.body.model import BodyModel
from vision3d.body.sfv import network_keypoints, to_network_input
from vision3d.body.skeleton import JOINT_NAMES, PARENTS
from vision3d.body.video_fitting import SequenceConfig, fit_sequence, render_motion_video, sequence_to_motion
from vision3d.scenes.raster import interpolate, rasterize, vertex_normals

TITLE_HEIGHT = 22  # pixels of the strip above each panel
TITLES = ("input {size}x{size}", "2D network keypoints", "temporal 3D fit", "humanoid replay (MuJoCo)")


def _side_color(name: str) -> tuple[int, int, int]:
    if name.startswith("left"):
        return (235, 60, 60)
    if name.startswith("right"):
        return (60, 120, 245)
    return (245, 215, 40)


def upscale(image: np.ndarray, panel: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [panel, panel, 3], nearest neighbour."""
    return np.asarray(Image.fromarray(image).resize((panel, panel), Image.NEAREST))


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, scale: float) -> np.ndarray:
    """The skeleton (bones to ``PARENTS``, dots at the joints) over ``image``; ``keypoints`` [24, 2] in pixels of the
    image before upscaling by ``scale`` (pixel ``i`` spans ``[i, i + 1]``)."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    points = keypoints * scale
    for joint, parent in enumerate(PARENTS):
        if parent >= 0:
            draw.line([tuple(points[parent]), tuple(points[joint])], fill=_side_color(JOINT_NAMES[joint]), width=2)
    radius = max(2.0, scale * 0.6)
    for joint, (u, v) in enumerate(points):
        draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=_side_color(JOINT_NAMES[joint]),
                     outline=(0, 0, 0))  # fmt: skip
    return np.asarray(canvas)


def render_fit(
    vertices: torch.Tensor, faces: torch.Tensor, camera, backgrounds: np.ndarray, scale: float, supersample: int = 2
) -> np.ndarray:
    """Camera-frame meshes ``vertices`` [T, V, 3] shaded (Lambert, light from the camera) over ``backgrounds``
    uint8 [T, P, P, 3] (``P`` = ``scale`` x the camera's image size): uint8 [T, P, P, 3]."""
    frames, size = len(vertices), backgrounds.shape[1]
    s = scale * supersample
    K = torch.tensor(
        [
            [camera.focal[0] * s, 0, camera.principal_point[0] * s],
            [0, camera.focal[1] * s, camera.principal_point[1] * s],
            [0, 0, 1],
        ],
        dtype=torch.float64,
    )
    light = torch.tensor([0.3, -0.5, -1.0], dtype=torch.float64)
    light = light / light.norm()
    albedo = torch.tensor([0.55, 0.75, 0.95], dtype=torch.float64)
    out = []
    for t in range(frames):
        verts = vertices[t : t + 1].double()
        fragments = rasterize(verts, faces, K, size * supersample, size * supersample)
        normals = interpolate(fragments, faces, vertex_normals(verts, faces))
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        shade = 0.3 + 0.7 * (normals * light).sum(-1).clamp_min(0)  # [1, H, W]
        color = shade[..., None] * albedo
        mask = torch.isfinite(fragments.depth).double()
        color = torch.nn.functional.avg_pool2d((color * mask[..., None]).permute(0, 3, 1, 2), supersample)
        coverage = torch.nn.functional.avg_pool2d(mask[:, None], supersample)[:, 0]
        background = torch.from_numpy(backgrounds[t]).double()[None] / 255 * 0.45  # dimmed input frame
        image = color.permute(0, 2, 3, 1) + (1 - coverage[..., None]) * background
        out.append((image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return np.stack(out)


def render_humanoid(motion, panel: int, azimuth: float, elevation: float) -> np.ndarray:
    """The Motion replayed kinematically in ``mpenv/HumanoidMimic-v0`` (the reference state set every frame), seen
    from a fixed free camera looking at the middle of the pelvis path: uint8 [T, panel, panel, 3]."""
    import mujoco

    from mpenv.humanoid.env import HumanoidMimicEnv

    env = HumanoidMimicEnv(motion, rsi=False, random_heading=False, reference_sync="none", early_termination=False)
    env.reset(seed=0)
    states = [env.reference_state(float(i)) for i in range(env.reference.n_frames)]
    pelvis = np.array([s["qpos"][:3] for s in states])
    model, data = env.model, env.data
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, panel)
    model.vis.global_.offheight = max(model.vis.global_.offheight, panel)
    renderer = mujoco.Renderer(model, panel, panel)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = [*(pelvis[:, :2].min(0) + pelvis[:, :2].max(0)) / 2, 0.9]
    span = float(np.linalg.norm(pelvis[:, :2].max(0) - pelvis[:, :2].min(0)))
    camera.distance = max(3.5, 1.6 * span + 2.0)
    camera.azimuth, camera.elevation = azimuth, elevation
    images = []
    for state in states:
        env.set_state(state["qpos"], np.zeros_like(state["qvel"]))
        mujoco.mj_kinematics(model, data)
        renderer.update_scene(data, camera=camera)
        images.append(renderer.render().copy())
    renderer.close()
    env.close()
    return np.stack(images)


def titled(image: np.ndarray, title: str) -> np.ndarray:
    strip = Image.new("RGB", (image.shape[1], TITLE_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(strip).text((6, 3), title, fill=(0, 0, 0), font=ImageFont.load_default(size=14))
    return np.concatenate([np.asarray(strip), image], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--clip", default="cmu_walk", help="shipped clip to film (resampled to 30 fps)")
    parser.add_argument("--frames", type=int, default=45, help="frames from the clip's start")
    parser.add_argument("--size", type=int, default=64, help="pixels of the filmed video (the network's input: 64)")
    parser.add_argument("--panel", type=int, default=192, help="pixels per panel side")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second of the GIF and MP4")
    parser.add_argument("--seed", type=int, default=0, help="seed of the person's appearance")
    parser.add_argument(
        "--azimuth",
        type=float,
        default=240.0,
        help="humanoid camera azimuth, degrees (240: about the input camera's side of the body)",
    )
    parser.add_argument("--elevation", type=float, default=-12.0, help="humanoid camera elevation, degrees")
    parser.add_argument("--still", type=Path, default=None, help="also save the middle frame as this PNG")
    parser.add_argument("--out", type=Path, default=Path("docs/sfv_stages.gif"), help="the GIF; the .mp4 beside it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()

    model = BodyModel.default()
    clip = load_clip(args.clip).resample(30.0).clip(start_frame=0, end_frame=args.frames)
    video = render_motion_video(clip, model, yaw_degrees=60, image_size=args.size, seed=args.seed)
    frames = video.images.numpy()
    images, net_scale = to_network_input(frames)
    keypoints = (network_keypoints(images) / net_scale).float()  # pixels of the filmed frames
    print(f"rendered {len(frames)} frames {args.size}x{args.size}, keypoints ({time.perf_counter() - start:.0f} s)")
    fit = fit_sequence(model, keypoints, None, video.camera, SequenceConfig())
    print(f"temporal fit: reprojection error {fit.reprojection_error.mean():.2f} px "
          f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    motion = sequence_to_motion(fit, 30.0, name=f"{args.clip}_sfv", model=model)

    scale = args.panel / args.size
    inputs = np.stack([upscale(f, args.panel) for f in frames])
    with_keypoints = np.stack([draw_keypoints(i, k, scale) for i, k in zip(inputs, keypoints.numpy(), strict=True)])
    with torch.no_grad():
        n = len(fit)
        posed = model(betas=fit.betas.to(model.dtype).expand(n, -1), global_orient=fit.global_orient.to(model.dtype),
                      body_pose=fit.body_pose.to(model.dtype), transl=fit.transl.to(model.dtype))  # fmt: skip
    smooth_inputs = np.stack([np.asarray(Image.fromarray(f).resize((args.panel,) * 2, Image.BILINEAR)) for f in frames])
    meshes = render_fit(posed.vertices, model.faces.cpu(), video.camera, smooth_inputs, scale)
    humanoid = render_humanoid(motion, args.panel, args.azimuth, args.elevation)
    print(f"rendered the mesh and the humanoid ({time.perf_counter() - start:.0f} s)")

    titles = [t.format(size=args.size) for t in TITLES]
    composite = []
    for t in range(len(frames)):
        panels = [titled(p[t], title) for p, title in zip((inputs, with_keypoints, meshes, humanoid), titles,
                                                          strict=True)]  # fmt: skip
        gap = np.full((panels[0].shape[0], 4, 3), 255, dtype=np.uint8)
        row = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
        composite.append(row)
    composite = np.stack(composite)

    import imageio.v3 as iio

    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, composite, duration=1000 / args.fps, loop=0)
    mp4 = args.out.with_suffix(".mp4")
    iio.imwrite(mp4, composite, plugin="FFMPEG", fps=args.fps, codec="libx264", quality=7, macro_block_size=2)
    seconds = time.perf_counter() - start
    sizes = ", ".join(f"{p} {p.stat().st_size / 1e6:.2f} MB" for p in (args.out, mp4))
    print(f"{len(composite)} frames {composite.shape[2]}x{composite.shape[1]} in {seconds:.0f} s -> {sizes}")
    if args.still is not None:
        Image.fromarray(composite[len(composite) // 2]).save(args.still)
        print(f"middle frame -> {args.still}")


if __name__ == "__main__":
    main()
