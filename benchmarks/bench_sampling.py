"""Benchmark of cached against naive autoregressive sampling: the transformer's KV cache and WaveNet's
fast-wavenet queues.

Generating ``D`` values one at a time with the naive loop reruns the whole network on the whole sequence at
every step, ``O(D^2)`` network work (``O(D^3)`` for the transformer's attention); the caches compute one
new position per step, ``O(D)`` (plus ``O(D^2)`` cheap attention dot products). For each model
this samples ``--n`` images of ``--size`` x ``--size`` binary pixels (``D = size^2``) both ways from the same
seed, checks that the two sets of samples are identical, and prints the times and the speed-ups side by side.
The models are untrained (sampling cost does not depend on the weights) with their default hyperparameters.

    python benchmarks/bench_sampling.py                  # 16 x 16 images (D = 256), 16 samples
    python benchmarks/bench_sampling.py --size 8 --n 64  # the digits' size
    python benchmarks/bench_sampling.py --size 32        # D = 1024: the gap widens with D

Exits with status 1 if cached and naive samples differ or a speed-up is below ``--min-speedup``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from generative.autoregressive import CausalTransformer, WaveNet


def timed_sample(model: torch.nn.Module, n: int, seed: int, cached: bool) -> tuple[torch.Tensor, float]:
    """Samples and wall-clock seconds of ``model.sample`` with a fresh generator seeded ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    samples = model.sample(n, generator=generator, cached=cached)
    return samples, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16, help="image side; D = size^2 values per sample")
    parser.add_argument("--n", type=int, default=16, help="samples drawn per run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the sampling")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--min-speedup", type=float, default=3.0, help="fail below this naive/cached ratio")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    shape = (1, args.size, args.size)
    torch.manual_seed(args.seed)
    models = {"CausalTransformer": CausalTransformer(shape).eval(), "WaveNet": WaveNet(shape).eval()}
    print(f"sampling {args.n} x {shape} (D = {args.size**2}), {args.threads} thread(s)")
    print(f"{'model':<18} {'naive s':>9} {'cached s':>9} {'speed-up':>9}  identical")
    ok = True
    for name, model in models.items():
        naive, naive_s = timed_sample(model, args.n, args.seed, cached=False)
        cached, cached_s = timed_sample(model, args.n, args.seed, cached=True)
        identical = torch.equal(naive, cached)
        speedup = naive_s / cached_s
        ok &= identical and speedup >= args.min_speedup
        print(f"{name:<18} {naive_s:>9.3f} {cached_s:>9.3f} {speedup:>8.1f}x  {identical}")
    wavenet = models["WaveNet"]
    print(f"WaveNet: dilations {list(wavenet.dilations)}, receptive field {wavenet.receptive_field} values")
    if not ok:
        print(f"FAILED: samples differ or a speed-up is below {args.min_speedup}x", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
