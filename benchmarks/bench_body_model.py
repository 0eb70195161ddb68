"""Benchmark of :class:`vision3d.body.model.BodyModel` against ``smplx.SMPL`` and of the FK-only path.

1. Forward pass (vertices and joints) at batch 1, 64 and 256 (``--batches``) on the CPU, float32, one torch thread
   (``--threads``), under ``torch.no_grad()``: ours vs ``smplx.SMPL`` built on the SAME synthetic SMPL-sized arrays
   (6890 vertices, 24 joints, 10 betas, 207 pose correctives, so both compute the pose correctives -- the SMPL
   license forbids shipping the real files, and timing does not depend on the values), called with the same
   inputs. Goal: ours at least 1.3x as fast at every batch size (median over rounds of smplx time / ours); both
   must give the same vertices and joints.
2. Joints only: :func:`~vision3d.body.kinematics.forward_kinematics_axis_angle` on ``--fk-frames`` (default
   10,000) frames with the model's rest joints vs the full mesh path (``BodyModel`` in chunks of the largest batch)
   for the same frames. Goal: FK at least 20x faster.

Rounds alternate (ours, smplx, ours, smplx, ...) so that load from other processes hits both sides alike; every
round times the same number of calls on each side (enough calls that a round lasts ``--min-round-ms``, so batch 1
is not timer noise), and medians over ``--rounds`` rounds are reported with the spread of the per-round ratios.
Both sides run in this one process with the same thread count. When ours misses the goal, the time of each
:mod:`vision3d.body.lbs` stage is printed too (``--stages`` always prints it).

    python benchmarks/bench_body_model.py                       # the goals above, about two minutes
    python benchmarks/bench_body_model.py --batches 64 --rounds 31

Exits with status 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import math
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
from vision3d.body.skeleton import N_JOINTS, PARENTS

MIN_RATIO_VS_SMPLX = 1.3
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


def calls_per_round(functions: dict[str, Callable[[], object]], min_round_s: float) -> int:
    """How many calls make the fastest function's round last ``min_round_s`` (one timed warm-up call each)."""
    fastest = math.inf
    for function in functions.values():
        start = time.perf_counter()
        function()
        fastest = min(fastest, time.perf_counter() - start)
    return max(1, math.ceil(min_round_s / fastest))


def alternating_rounds(
    functions: dict[str, Callable[[], object]], rounds: int, calls: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function in each round; the functions take turns (A, B, A, B, ...), every round
    running each one ``calls`` times in a row."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                function()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def interleaved_medians(
    functions: dict[str, Callable[[], object]], reps: int, warm_up: bool = True
) -> dict[str, float]:
    """Median seconds per call of each function over ``reps`` alternating rounds (after one warm-up call each,
    unless the caller has already run them)."""
    for function in functions.values() if warm_up else ():
        function()
    return {name: statistics.median(values) for name, values in alternating_rounds(functions, reps).items()}


def make_smplx(arrays: dict[str, np.ndarray], batch: int) -> torch.nn.Module:
    import smplx
    from smplx.utils import Struct

    # smplx.SMPL reads only pickles from disk; data_struct hands it the same arrays in memory.
    return smplx.SMPL(
        model_path="unused", data_struct=Struct(**arrays), batch_size=batch, num_betas=N_BETAS, dtype=torch.float32
    )


def bench_vs_smplx(ours: BodyModel, arrays: dict, batch: int, rounds: int, min_round_s: float) -> dict[str, object]:
    """Goal 1 at one batch size: per-round times of both forward passes, and the largest differences of their
    vertices and joints (smplx's first 24 joints are SMPL's; the rest are its extra vertex picks)."""
    theirs = make_smplx(arrays, batch)
    inputs = random_inputs(batch)
    with torch.no_grad():
        mine, reference = ours(**inputs), theirs(**inputs)
        vertex_diff = float((mine.vertices - reference.vertices).abs().max())
        joint_diff = float((mine.joints - reference.joints[:, :N_JOINTS]).abs().max())
        functions = {"ours": lambda: ours(**inputs), "smplx": lambda: theirs(**inputs)}
        calls = calls_per_round(functions, min_round_s)
        times = alternating_rounds(functions, rounds, calls)
    ratios = [t_smplx / t_ours for t_ours, t_smplx in zip(times["ours"], times["smplx"], strict=True)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {
        "ours": statistics.median(times["ours"]),
        "smplx": statistics.median(times["smplx"]),
        "ratio": statistics.median(ratios),
        "ratio_q1": quartiles[0],
        "ratio_q3": quartiles[2],
        "calls": calls,
        "vertex_diff": vertex_diff,
        "joint_diff": joint_diff,
    }


def stage_medians(ours: BodyModel, batch: int, rounds: int) -> dict[str, float]:
    """Where our forward pass spends its time: median seconds of each :mod:`vision3d.body.lbs` stage."""
    inputs = random_inputs(batch)
    pose = torch.cat([inputs["global_orient"], inputs["body_pose"]], dim=1).view(batch, N_JOINTS, 3)
    m, betas = ours, inputs["betas"]
    joint_template, joint_shapedirs = m.regressed_arrays()
    with torch.no_grad():
        rotations = axis_angle_to_matrix(pose)
        shaped = lbs.shape_blend(m.v_template, m.shapedirs, betas)
        rest_joints = lbs.shape_blend(joint_template, joint_shapedirs, betas)
        transforms = lbs.world_transforms(rotations, rest_joints, PARENTS)
        rest = shaped + lbs.pose_correctives(m.posedirs, rotations)
        stages = {
            "axis_angle_to_matrix": lambda: axis_angle_to_matrix(pose),
            "shape_blend (mesh)": lambda: lbs.shape_blend(m.v_template, m.shapedirs, betas),
            "shape_blend (joints)": lambda: lbs.shape_blend(joint_template, joint_shapedirs, betas),
            "world_transforms": lambda: lbs.world_transforms(rotations, rest_joints, PARENTS),
            "pose_correctives + add": lambda: shaped + lbs.pose_correctives(m.posedirs, rotations),
            "skin": lambda: lbs.skin(rest, m.weights, transforms),
            "whole forward": lambda: m(**inputs),
        }
        return interleaved_medians(stages, rounds)


def bench_fk_vs_mesh(ours: BodyModel, frames: int, chunk: int, rounds: int) -> tuple[dict[str, float], float]:
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
        medians = interleaved_medians({"fk": fk, "mesh": mesh}, rounds, warm_up=False)
    return medians, diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256], help="poses per forward pass")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds per batch size (default 15)")
    parser.add_argument("--min-round-ms", type=float, default=50.0, help="least duration of one side's round")
    parser.add_argument("--fk-frames", type=int, default=10_000, help="frames of the FK vs mesh comparison")
    parser.add_argument("--fk-rounds", type=int, default=3, help="alternating rounds of the FK vs mesh comparison")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--skip-smplx", action="store_true", help="only the FK comparison")
    parser.add_argument("--skip-fk", action="store_true", help="only the comparison with smplx")
    parser.add_argument("--stages", action="store_true", help="time the lbs stages even if ours meets the goal")
    args = parser.parse_args(argv)
    if min(args.batches) < 1 or args.rounds < 1 or args.fk_rounds < 1 or args.fk_frames < 1 or args.threads < 1:
        parser.error("--batches, --rounds, --fk-rounds, --fk-frames and --threads must be positive")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, CPU, no_grad")

    arrays = synthetic_smpl_arrays()
    ours = BodyModel.from_arrays(arrays, dtype=torch.float32, device="cpu")
    checks: list[tuple[str, bool]] = []
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []  # printed after the table

    for batch in [] if args.skip_smplx else args.batches:
        result = bench_vs_smplx(ours, arrays, batch, args.rounds, args.min_round_ms / 1e3)
        ratio, diff = result["ratio"], max(result["vertex_diff"], result["joint_diff"])
        rows.append(
            (
                f"forward, batch {batch}",
                f"ours {1e3 * result['ours']:.2f} ms",
                f"smplx {1e3 * result['smplx']:.2f} ms",
                f"{ratio:.2f}x (quartiles {result['ratio_q1']:.2f}-{result['ratio_q3']:.2f}, "
                f"{args.rounds} rounds of {result['calls']} call(s); max |dv|, |dj| {diff:.1e})",
            )
        )
        goal = f"batch {batch}: ours >= {MIN_RATIO_VS_SMPLX}x smplx ({ratio:.2f}x)"
        checks.append((goal, ratio >= MIN_RATIO_VS_SMPLX))
        same = f"batch {batch}: same vertices and joints as smplx ({diff:.1e} < {VERTEX_TOLERANCE})"
        checks.append((same, diff < VERTEX_TOLERANCE))
        if ratio < MIN_RATIO_VS_SMPLX or args.stages:
            stages = stage_medians(ours, batch, args.rounds)
            notes.append(f"our forward pass by stage (batch {batch}, medians of separate calls):")
            for name, seconds in stages.items():
                notes.append(f"  {name:24} {1e3 * seconds:8.2f} ms  {100 * seconds / stages['whole forward']:5.1f} %")

    if not args.skip_fk:
        chunk = max(args.batches)
        medians, joint_diff = bench_fk_vs_mesh(ours, args.fk_frames, chunk, args.fk_rounds)
        speedup = medians["mesh"] / medians["fk"]
        rows.append(
            (
                f"joints, {args.fk_frames:,} frames",
                f"FK {1e3 * medians['fk']:.1f} ms",
                f"mesh {1e3 * medians['mesh']:.0f} ms",
                f"{speedup:.0f}x (mesh in batches of {chunk}; max |dj| {joint_diff:.1e})",
            )
        )
        checks.append((f"FK >= {MIN_FK_SPEEDUP:.0f}x faster than mesh ({speedup:.0f}x)", speedup >= MIN_FK_SPEEDUP))
        checks.append(
            (f"FK joints = mesh joints ({joint_diff:.1e} < {VERTEX_TOLERANCE})", joint_diff < VERTEX_TOLERANCE)
        )

    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"{'':{widths[0]}}  {'A':{widths[1]}}  {'B':{widths[2]}}  B / A (median of per-round ratios)")
    for row in rows:
        print("  ".join(f"{cell:{width}}" for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    print("\n".join(notes))
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
