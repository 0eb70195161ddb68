"""Benchmark of :class:`vision3d.body.model.BodyModel` against ``smplx.SMPL`` and of the FK-only path.

1. Forward pass (vertices and joints) of a batch of ``--batch`` (default 256) poses on the CPU, float32, under
   ``torch.no_grad()``: ours vs ``smplx.SMPL`` built on the SAME synthetic SMPL-sized arrays (6890 vertices,
   24 joints, 10 betas, 207 pose correctives -- the SMPL license forbids shipping the real files, and timing does
   not depend on the values). Goal: ours at least as fast (ratio smplx / ours >= 1.0); both must give the same
   vertices.
2. Joints only: :func:`~vision3d.body.kinematics.forward_kinematics_axis_angle` on ``--fk-frames`` (default
   10,000) frames with the model's rest joints vs the full mesh path (``BodyModel`` in chunks of ``--batch``) for
   the same frames. Goal: FK at least 20x faster.

Repetitions are interleaved (A, B, A, B, ...) so that load from other processes hits both sides alike, and the
median is reported. Both sides run in this one process with the same torch thread count. On a machine whose
cores are busy with other work, torch's default of one thread per core stalls at every parallel region (absolute
times can grow 3-4x); ``--threads 1`` gives steadier numbers there. When ours is slower than smplx, the time of
each :mod:`vision3d.body.lbs` stage is printed too (``--stages`` always prints it).

    python benchmarks/bench_body_model.py                    # the goals above, about half a minute
    python benchmarks/bench_body_model.py --batch 64 --reps 5 --threads 1

Exits with status 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from vision3d.body import lbs
from vision3d.body.kinematics import forward_kinematics_axis_angle
from vision3d.body.model import BodyModel, random_model_arrays
from vision3d.body.rotations import axis_angle_to_matrix
from vision3d.body.skeleton import PARENTS

MIN_RATIO_VS_SMPLX = 1.0
MIN_FK_SPEEDUP = 20.0
VERTEX_TOLERANCE = 1e-4  # float32, coordinates of order 1
N_VERTS, N_FACES, N_BETAS = 6890, 13776, 10


def synthetic_smpl_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    return random_model_arrays(seed, N_VERTS, N_FACES, N_BETAS)


def random_inputs(batch: int, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "betas": torch.randn(batch, N_BETAS, generator=gen),
        "global_orient": torch.randn(batch, 3, generator=gen),
        "body_pose": 0.5 * torch.randn(batch, 69, generator=gen),
        "transl": torch.randn(batch, 3, generator=gen),
    }


def interleaved_medians(
    functions: dict[str, Callable[[], object]], reps: int, warm_up: bool = True
) -> dict[str, float]:
    """Median wall time in seconds of each function, run in turn ``reps`` times (after one warm-up call each,
    unless the caller has already run them)."""
    for function in functions.values() if warm_up else ():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(reps):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def make_smplx(arrays: dict[str, np.ndarray], batch: int) -> torch.nn.Module:
    import smplx
    from smplx.utils import Struct

    # smplx.SMPL reads only pickles from disk; data_struct hands it the same arrays in memory.
    return smplx.SMPL(
        model_path="unused", data_struct=Struct(**arrays), batch_size=batch, num_betas=N_BETAS, dtype=torch.float32
    )


def bench_vs_smplx(ours: BodyModel, arrays: dict, batch: int, reps: int) -> tuple[dict[str, float], float]:
    """Goal 1: medians of both forward passes and the max abs vertex difference."""
    theirs = make_smplx(arrays, batch)
    inputs = random_inputs(batch)
    with torch.no_grad():
        diff = float((ours(**inputs).vertices - theirs(**inputs).vertices).abs().max())
        medians = interleaved_medians({"ours": lambda: ours(**inputs), "smplx": lambda: theirs(**inputs)}, reps)
    return medians, diff


def stage_medians(ours: BodyModel, batch: int, reps: int) -> dict[str, float]:
    """Where our forward pass spends its time: median seconds of each :mod:`vision3d.body.lbs` stage."""
    inputs = random_inputs(batch)
    pose = torch.cat([inputs["global_orient"], inputs["body_pose"]], dim=1).view(batch, 24, 3)
    m = ours
    with torch.no_grad():
        rotations = axis_angle_to_matrix(pose)
        shaped = lbs.shape_blend(m.v_template, m.shapedirs, inputs["betas"])
        rest_joints = lbs.regress_joints(m.J_regressor, shaped)
        transforms = lbs.world_transforms(rotations, rest_joints, PARENTS)
        rest = shaped + lbs.pose_correctives(m.posedirs, rotations)
        stages = {
            "axis_angle_to_matrix": lambda: axis_angle_to_matrix(pose),
            "shape_blend": lambda: lbs.shape_blend(m.v_template, m.shapedirs, inputs["betas"]),
            "regress_joints": lambda: lbs.regress_joints(m.J_regressor, shaped),
            "world_transforms": lambda: lbs.world_transforms(rotations, rest_joints, PARENTS),
            "pose_correctives": lambda: lbs.pose_correctives(m.posedirs, rotations),
            "skin": lambda: lbs.skin(rest, m.weights, transforms),
        }
        return interleaved_medians(stages, reps)


def bench_fk_vs_mesh(ours: BodyModel, frames: int, chunk: int, reps: int) -> tuple[dict[str, float], float]:
    """Goal 2: medians of FK-only and chunked mesh passes over the same frames, and the max abs joint difference."""
    gen = torch.Generator().manual_seed(2)
    poses = 0.5 * torch.randn(frames, 24, 3, generator=gen)
    transl = torch.randn(frames, 3, generator=gen)
    with torch.no_grad():
        rest_joints = ours().joints[0]  # mean shape, rest pose: J(0)

        def fk() -> torch.Tensor:
            return forward_kinematics_axis_angle(poses, rest_joints, PARENTS, transl)[0]

        def mesh() -> torch.Tensor:
            joints = []
            for start in range(0, frames, chunk):
                part = slice(start, start + chunk)
                flat = poses[part].reshape(-1, 72)
                out = ours(global_orient=flat[:, :3], body_pose=flat[:, 3:], transl=transl[part])
                joints.append(out.joints)
            return torch.cat(joints)

        diff = float((fk() - mesh()).abs().max())  # doubles as the warm-up: a mesh pass takes seconds
        medians = interleaved_medians({"fk": fk, "mesh": mesh}, reps, warm_up=False)
    return medians, diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="poses per forward pass (and mesh chunk size)")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions of the forward-pass comparison")
    parser.add_argument("--fk-frames", type=int, default=10_000, help="frames of the FK vs mesh comparison")
    parser.add_argument("--fk-reps", type=int, default=3, help="timed repetitions of the FK vs mesh comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-smplx", action="store_true", help="only the FK comparison")
    parser.add_argument("--stages", action="store_true", help="time the lbs stages even if ours is not slower")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, no_grad")

    arrays = synthetic_smpl_arrays()
    ours = BodyModel.from_arrays(arrays, dtype=torch.float32, device="cpu")
    checks: list[tuple[str, bool]] = []
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []  # printed after the table

    if not args.skip_smplx:
        medians, vertex_diff = bench_vs_smplx(ours, arrays, args.batch, args.reps)
        ratio = medians["smplx"] / medians["ours"]
        rows.append(
            (
                f"forward, batch {args.batch}",
                f"ours {1e3 * medians['ours']:.1f} ms",
                f"smplx {1e3 * medians['smplx']:.1f} ms",
                f"{ratio:.2f}x (max |dv| {vertex_diff:.1e})",
            )
        )
        checks.append((f"ours >= smplx speed (ratio {ratio:.2f} >= {MIN_RATIO_VS_SMPLX})", ratio >= MIN_RATIO_VS_SMPLX))
        if ratio < MIN_RATIO_VS_SMPLX or args.stages:
            stages = stage_medians(ours, args.batch, args.reps)
            notes.append(f"our forward pass by stage (batch {args.batch}, medians of separate calls):")
            for name, seconds in stages.items():
                notes.append(f"  {name:22} {1e3 * seconds:8.1f} ms  {100 * seconds / sum(stages.values()):5.1f} %")
        checks.append(
            (f"same vertices as smplx ({vertex_diff:.1e} < {VERTEX_TOLERANCE})", vertex_diff < VERTEX_TOLERANCE)
        )

    medians, joint_diff = bench_fk_vs_mesh(ours, args.fk_frames, args.batch, args.fk_reps)
    speedup = medians["mesh"] / medians["fk"]
    rows.append(
        (
            f"joints, {args.fk_frames:,} frames",
            f"FK {1e3 * medians['fk']:.1f} ms",
            f"mesh {1e3 * medians['mesh']:.0f} ms",
            f"{speedup:.0f}x (max |dj| {joint_diff:.1e})",
        )
    )
    checks.append((f"FK >= {MIN_FK_SPEEDUP:.0f}x faster than mesh ({speedup:.0f}x)", speedup >= MIN_FK_SPEEDUP))
    checks.append((f"FK joints = mesh joints ({joint_diff:.1e} < {VERTEX_TOLERANCE})", joint_diff < VERTEX_TOLERANCE))

    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(f"{'':{widths[0]}}  {'A':{widths[1]}}  {'B':{widths[2]}}  B / A")
    for row in rows:
        print("  ".join(f"{cell:{width}}" for cell, width in zip(row, widths, strict=True)))
    print("\n".join(notes))
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
