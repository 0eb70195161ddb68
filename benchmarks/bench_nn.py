"""The hand-written neural-network foundations of :mod:`mpenv.nn` against torch's own kernels on this machine.

    python benchmarks/bench_nn.py                                   # every part
    python benchmarks/bench_nn.py --parts conv --rounds 5 --threads 1
    python benchmarks/bench_nn.py --parts conv --device cuda        # the naive loop conv stays on the CPU

Part ``conv``: :func:`~mpenv.nn.conv.conv2d` (im2col and one matrix product per group) against ``F.conv2d``, forward
only and forward + backward, the backward being :func:`~mpenv.nn.conv.conv2d_backward` (which gathers im2col's
columns again, as a layer that keeps only ``x`` would) against autograd through ``F.conv2d``. Sizes are typical
layers, ``[N, C_in, H x W, kh x kw, C_out]`` with a 3x3 kernel, stride 1 and padding 1: ``[8, 16, 32x32, 3x3, 32]``
and ``[8, 64, 16x16, 3x3, 64]``; plus the tiny ``[1, 2, 8x8, 3x3, 4]`` and ``[1, 4, 16x16, 3x3, 8]`` on which the
course's naive convolution -- six nested Python loops per image (output channel, row, column, input channel, kernel
row, kernel column) on Python floats, with the same loops for its backward pass -- is also timed, for the naive/ours
ratio (it would take minutes on the larger sizes). On the smallest size ours is mostly fixed per-call cost
(argument checks, a few small tensors), so the ratio grows with the size.

Part ``lstm``: :class:`~mpenv.nn.recurrent.LSTM` (one Python step per time step, :func:`~mpenv.nn.recurrent.lstm_cell`)
against ``nn.LSTM`` with the same weights, forward only and forward + backward, ours the hand-written BPTT
(``LSTM.backward``, gradients on the outputs and on ``(h_n, c_n)``) against autograd through ``nn.LSTM``. Sizes
``[T, N, I, H]``: ``[50, 1, 32, 32]`` (per-step overhead) and ``[50, 32, 128, 128]``. Float32, from and to zero
gradients as a training step would; the outputs are checked equal first.

Every configuration runs once as warm-up, then the timings alternate between configurations in rounds, so slow
drift of the machine hits all of them alike; the median over ``--rounds`` is printed, in milliseconds, with the
ratios ours/torch (how much slower the readable version is than torch's kernels) and naive/ours. Nothing is written
to disk.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mpenv.nn.conv import conv2d, conv2d_backward
from mpenv.nn.recurrent import LSTM

# [N, C_in, H (= W), k, C_out]; the naive loops run on the tiny sizes (N = 1) only
CONV_SIZES = [(1, 2, 8, 3, 4), (1, 4, 16, 3, 8), (8, 16, 32, 3, 32), (8, 64, 16, 3, 64)]
PADDING = 1


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function: Callable[[], object], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def median_times(cases: dict[str, Callable[[], object]], rounds: int, device: str) -> dict[str, float]:
    """Median seconds of every case over ``rounds``, after one warm-up call each; the cases alternate in a round."""
    for function in cases.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, function in cases.items():
            times[name].append(timed(function, device))
    return {name: statistics.median(values) for name, values in times.items()}


# ------------------------------------------------------------------------------------------------------- conv


def naive_conv2d(x: list, weight: list, padding: int) -> list:
    """The course's definition as loops: ``y[n][o][i][j] = sum_{c, k, l} w[o][c][k][l] x_pad[n][c][i + k][j + l]``
    (stride 1), on nested lists of Python floats."""
    x_pad = [[pad_rows(channel, padding) for channel in sample] for sample in x]
    c_out, c_in, kh, kw = len(weight), len(weight[0]), len(weight[0][0]), len(weight[0][0][0])
    out_h, out_w = len(x_pad[0][0]) - kh + 1, len(x_pad[0][0][0]) - kw + 1
    y = []
    for sample in x_pad:
        y_n = [[[0.0] * out_w for _ in range(out_h)] for _ in range(c_out)]
        for o in range(c_out):
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0
                    for c in range(c_in):
                        for k in range(kh):
                            for l_ in range(kw):
                                total += weight[o][c][k][l_] * sample[c][i + k][j + l_]
                    y_n[o][i][j] = total
        y.append(y_n)
    return y


def naive_conv2d_backward(grad_out: list, x: list, weight: list, padding: int) -> tuple[list, list]:
    """``dL/dx`` and ``dL/dw`` with the forward pass's six loops: every product ``w x`` sends ``G`` to both factors."""
    x_pad = [[pad_rows(channel, padding) for channel in sample] for sample in x]
    c_out, c_in, kh, kw = len(weight), len(weight[0]), len(weight[0][0]), len(weight[0][0][0])
    out_h, out_w = len(grad_out[0][0]), len(grad_out[0][0][0])
    grad_w = [[[[0.0] * kw for _ in range(kh)] for _ in range(c_in)] for _ in range(c_out)]
    grad_x = []
    for sample, grad_sample in zip(x_pad, grad_out, strict=True):
        grad_pad = [[[0.0] * len(row) for row in channel] for channel in sample]
        for o in range(c_out):
            for i in range(out_h):
                for j in range(out_w):
                    g = grad_sample[o][i][j]
                    for c in range(c_in):
                        for k in range(kh):
                            for l_ in range(kw):
                                grad_w[o][c][k][l_] += g * sample[c][i + k][j + l_]
                                grad_pad[c][i + k][j + l_] += g * weight[o][c][k][l_]
        grad_x.append([[row[padding : len(row) - padding] for row in channel[padding : len(channel) - padding]]
                       for channel in grad_pad])  # fmt: skip
    return grad_x, grad_w


def pad_rows(image: list, padding: int) -> list:
    width = len(image[0]) + 2 * padding
    zeros = [[0.0] * width for _ in range(padding)]
    return zeros + [[0.0] * padding + list(row) + [0.0] * padding for row in image] + zeros


def conv_cases(size: tuple[int, int, int, int, int], device: str, naive: bool) -> dict[str, Callable[[], object]]:
    n, c_in, hw, k, c_out = size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, c_in, hw, hw, generator=generator).to(device)
    weight = (torch.randn(c_out, c_in, k, k, generator=generator) / (c_in * k * k) ** 0.5).to(device)
    bias = torch.randn(c_out, generator=generator).to(device)
    grad_out = torch.randn(n, c_out, hw, hw, generator=generator).to(device)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]

    def ours_backward() -> None:
        conv2d(x, weight, bias, padding=PADDING)
        conv2d_backward(grad_out, x, weight, padding=PADDING)

    def torch_forward() -> None:
        with torch.no_grad():
            F.conv2d(x, weight, bias, padding=PADDING)

    def torch_backward() -> None:
        for leaf in leaves:
            leaf.grad = None
        F.conv2d(*leaves, padding=PADDING).backward(grad_out)

    cases = {
        "ours fwd": lambda: conv2d(x, weight, bias, padding=PADDING),
        "torch fwd": torch_forward,
        "ours fwd+bwd": ours_backward,
        "torch fwd+bwd": torch_backward,
    }
    if naive:
        x_list, w_list, g_list = x.cpu().tolist(), weight.cpu().tolist(), grad_out.cpu().tolist()
        check_naive(x, weight, x_list, w_list, g_list)

        def naive_backward() -> None:
            naive_conv2d(x_list, w_list, PADDING)
            naive_conv2d_backward(g_list, x_list, w_list, PADDING)

        cases["naive fwd"] = lambda: naive_conv2d(x_list, w_list, PADDING)
        cases["naive fwd+bwd"] = naive_backward
    return cases


def check_naive(x: torch.Tensor, weight: torch.Tensor, x_list: list, w_list: list, g_list: list) -> None:
    """The loops compute what F.conv2d computes, so the ratio compares like with like."""
    x, weight = x.cpu().double().requires_grad_(), weight.cpu().double().requires_grad_()
    y = F.conv2d(x, weight, padding=PADDING)
    y.backward(torch.tensor(g_list, dtype=torch.float64))
    grad_x, grad_w = naive_conv2d_backward(g_list, x_list, w_list, PADDING)
    for ours, theirs in ((naive_conv2d(x_list, w_list, PADDING), y), (grad_x, x.grad), (grad_w, weight.grad)):
        torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), theirs.detach(), atol=1e-4, rtol=1e-4)


def conv(args: argparse.Namespace) -> None:
    print(f"conv2d, 3x3 kernel, stride 1, padding {PADDING}, float32 on {args.device}, {torch.get_num_threads()} "
          f"threads; median of {args.rounds} rounds, ms")  # fmt: skip
    header = f"{'[N, C_in, HxW, k, C_out]':<26} {'pass':<8} {'ours':>9} {'torch':>9} {'ours/torch':>11}"
    print(header + f" {'naive':>10} {'naive/ours':>11}")
    for size in CONV_SIZES:
        median = median_times(conv_cases(size, args.device, naive=size[0] == 1), args.rounds, args.device)
        n, c_in, hw, k, c_out = size
        label = f"[{n}, {c_in}, {hw}x{hw}, {k}x{k}, {c_out}]"
        for name in ("fwd", "fwd+bwd"):
            ours, theirs = median[f"ours {name}"] * 1e3, median[f"torch {name}"] * 1e3
            line = f"{label:<26} {name:<8} {ours:9.3f} {theirs:9.3f} {ours / theirs:10.2f}x"
            if f"naive {name}" in median:
                naive = median[f"naive {name}"] * 1e3
                line += f" {naive:10.2f} {naive / ours:10.1f}x"
            print(line)


# ------------------------------------------------------------------------------------------------------- lstm

LSTM_SIZES = [(50, 1, 32, 32), (50, 32, 128, 128)]  # [T, N, I, H]


def lstm_cases(size: tuple[int, int, int, int], device: str) -> dict[str, Callable[[], object]]:
    steps, n, i, h = size
    generator = torch.Generator().manual_seed(0)
    module = torch.nn.LSTM(i, h).to(device)
    ours = LSTM.from_torch(module)
    x = torch.randn(steps, n, i, generator=generator).to(device)
    h0, c0, grad_h, grad_c = (torch.randn(n, h, generator=generator).to(device) for _ in range(4))
    grad_out = torch.randn(steps, n, h, generator=generator).to(device)
    leaves = [t.detach().clone().requires_grad_() for t in (x, h0, c0)]
    with torch.no_grad():  # like with like: the same outputs
        expected, _ = module(x, (h0[None], c0[None]))
    torch.testing.assert_close(ours.forward(x, h0, c0)[0], expected, atol=1e-5, rtol=1e-5)

    def ours_backward() -> None:
        ours.forward(x, h0, c0)
        ours.backward(grad_out, (grad_h, grad_c))

    def torch_forward() -> None:
        with torch.no_grad():
            module(x, (h0[None], c0[None]))

    def torch_backward() -> None:
        for p in (*leaves, *module.parameters()):
            p.grad = None
        out, (h_n, c_n) = module(leaves[0], (leaves[1][None], leaves[2][None]))
        torch.autograd.backward([out, h_n[0], c_n[0]], [grad_out, grad_h, grad_c])

    return {
        "ours fwd": lambda: ours.forward(x, h0, c0),
        "torch fwd": torch_forward,
        "ours fwd+bwd": ours_backward,
        "torch fwd+bwd": torch_backward,
    }


def lstm(args: argparse.Namespace) -> None:
    print(f"\nLSTM, one layer, float32 on {args.device}, {torch.get_num_threads()} threads; median of {args.rounds} "
          "rounds, ms")  # fmt: skip
    print(f"{'[T, N, I, H]':<26} {'pass':<8} {'ours':>9} {'torch':>9} {'ours/torch':>11}")
    for size in LSTM_SIZES:
        median = median_times(lstm_cases(size, args.device), args.rounds, args.device)
        label = "[{}, {}, {}, {}]".format(*size)
        for name in ("fwd", "fwd+bwd"):
            ours, theirs = median[f"ours {name}"] * 1e3, median[f"torch {name}"] * 1e3
            print(f"{label:<26} {name:<8} {ours:9.3f} {theirs:9.3f} {ours / theirs:10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["conv", "lstm"], choices=["conv", "lstm"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if "conv" in args.parts:
        conv(args)
    if "lstm" in args.parts and "lstm" in globals():  # the LSTM part lives in its own function, lstm(args)
        globals()["lstm"](args)


if __name__ == "__main__":
    main()
