"""mpenv.nn.conv against torch (F.conv2d, F.conv_transpose2d, F.unfold, F.fold and autograd) and scipy.signal: im2col
convolution and its hand-written backward pass, the transposed convolution, correlation against convolution, the
Toeplitz matrices, a worked example by hand, shift equivariance, linearity and the input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mpenv.nn.conv import (
    col2im,
    conv2d,
    conv2d_backward,
    conv_output_size,
    conv_transpose2d,
    conv_transpose2d_backward,
    convolve2d,
    correlate2d,
    im2col,
    toeplitz_matrix_1d,
    toeplitz_matrix_2d,
)

TOL = {"atol": 1e-6, "rtol": 1e-6}

# (N, C_in, C_out, H, W, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 4, 8, 8, 3, 1, 0, 1, 1),
    (2, 3, 5, 9, 7, (3, 2), 1, 1, 1, 1),  # non-square kernel and image
    (1, 2, 3, 10, 11, (1, 4), (1, 2), (0, 2), 1, 1),
    (2, 4, 6, 11, 10, 3, 2, 1, 1, 1),
    (2, 3, 2, 12, 13, 2, 3, 0, 1, 1),  # stride > kernel: pixels no window reads
    (1, 2, 4, 13, 12, 3, 4, 2, 1, 1),
    (2, 3, 4, 12, 12, 3, 1, 2, 2, 1),  # dilation 2
    (1, 2, 3, 14, 11, (2, 3), (2, 1), (1, 0), (2, 3), 1),
    (2, 4, 6, 9, 9, 3, 1, 1, 1, 2),  # groups 2
    (2, 6, 4, 10, 8, (3, 1), 2, (1, 0), 2, 2),
    (2, 4, 4, 8, 8, 3, 1, 1, 1, 4),  # depthwise
    (1, 3, 6, 9, 10, 3, 2, 1, 1, 3),  # depthwise, two filters per channel
    (3, 1, 1, 5, 5, 5, 1, 0, 1, 1),  # the kernel covers the image: one output pixel
    (2, 3, 4, 7, 9, 1, 1, 0, 1, 1),  # 1x1 convolution
    (1, 2, 2, 6, 6, 4, 1, 3, 1, 1),  # padding wider than half the kernel
    (2, 4, 2, 10, 10, 3, (3, 2), 0, (1, 2), 2),
]
# (N, C_in, C_out, H, W, kernel, stride, padding, output_padding, dilation, groups)
TRANSPOSED_CASES = [
    (2, 3, 4, 5, 6, 3, 1, 0, 0, 1, 1),
    (2, 3, 4, 5, 6, 3, 2, 1, 1, 1, 1),
    (1, 4, 6, 4, 5, (2, 3), (3, 2), (0, 1), (2, 1), 1, 2),
    (2, 2, 3, 4, 4, 3, 1, 0, 1, 2, 1),  # output_padding >= stride, allowed below the dilation
    (1, 4, 4, 3, 3, 3, 2, 1, 0, 2, 4),  # depthwise
    (2, 3, 2, 4, 3, 2, 4, 0, 3, 1, 1),  # stride > kernel: gaps in the output
    (1, 2, 3, 6, 5, (1, 3), (2, 1), (0, 1), (1, 0), (1, 2), 1),
    (2, 4, 6, 5, 5, 3, 2, 2, 1, 1, 2),
    (1, 6, 3, 4, 4, (3, 2), 2, 0, 0, (2, 1), 3),
    (2, 1, 1, 3, 4, 4, 3, 1, 2, 1, 1),
]


def pair(value):
    return (value, value) if isinstance(value, int) else value


def conv_inputs(case, seed):
    n, c_in, c_out, h, w, kernel, *_, groups = case
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, h, w, dtype=torch.float64, generator=generator)
    weight = torch.randn(c_out, c_in // groups, *pair(kernel), dtype=torch.float64, generator=generator)
    bias = torch.randn(c_out, dtype=torch.float64, generator=generator)
    return x, weight, bias


def transposed_inputs(case, seed):
    n, c_in, c_out, h, w, kernel, *_, groups = case
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, h, w, dtype=torch.float64, generator=generator)
    weight = torch.randn(c_in, c_out // groups, *pair(kernel), dtype=torch.float64, generator=generator)
    bias = torch.randn(c_out, dtype=torch.float64, generator=generator)
    return x, weight, bias


# ------------------------------------------------------------------------------------------ against torch


@pytest.mark.parametrize("index", range(len(CONV_CASES)))
def test_conv2d_matches_torch(index):
    *_, stride, padding, dilation, groups = CONV_CASES[index]
    x, weight, bias = conv_inputs(CONV_CASES[index], seed=index)
    expected = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    torch.testing.assert_close(conv2d(x, weight, bias, stride, padding, dilation, groups), expected, **TOL)
    torch.testing.assert_close(conv2d(x, weight, None, stride, padding, dilation, groups),
                               F.conv2d(x, weight, None, stride, padding, dilation, groups), **TOL)  # fmt: skip


@pytest.mark.parametrize("index", range(len(CONV_CASES)))
def test_conv2d_backward_matches_autograd(index):
    *_, stride, padding, dilation, groups = CONV_CASES[index]
    x, weight, bias = (t.requires_grad_() for t in conv_inputs(CONV_CASES[index], seed=100 + index))
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    grads = conv2d_backward(grad_out, x.detach(), weight.detach(), stride, padding, dilation, groups)
    for ours, theirs in zip(grads, (x.grad, weight.grad, bias.grad), strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("index", range(len(TRANSPOSED_CASES)))
def test_conv_transpose2d_matches_torch(index):
    *_, stride, padding, output_padding, dilation, groups = TRANSPOSED_CASES[index]
    x, weight, bias = transposed_inputs(TRANSPOSED_CASES[index], seed=200 + index)
    expected = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)
    ours = conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups)
    torch.testing.assert_close(ours, expected, **TOL)


@pytest.mark.parametrize("index", range(len(TRANSPOSED_CASES)))
def test_conv_transpose2d_backward_matches_autograd(index):
    *_, stride, padding, output_padding, dilation, groups = TRANSPOSED_CASES[index]
    x, weight, bias = (t.requires_grad_() for t in transposed_inputs(TRANSPOSED_CASES[index], seed=300 + index))
    y = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    grads = conv_transpose2d_backward(grad_out, x.detach(), weight.detach(), stride, padding, output_padding,
                                      dilation, groups)  # fmt: skip
    for ours, theirs in zip(grads, (x.grad, weight.grad, bias.grad), strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("index", [0, 4, 7, 9])
def test_autograd_through_our_layers_agrees_with_the_hand_written_backward(index):
    """conv2d and conv_transpose2d are plain torch operations, so they also train by autograd."""
    *_, stride, padding, dilation, groups = CONV_CASES[index]
    x, weight, bias = (t.requires_grad_() for t in conv_inputs(CONV_CASES[index], seed=500 + index))
    y = conv2d(x, weight, bias, stride, padding, dilation, groups)
    grad_out = torch.randn_like(y)
    by_autograd = torch.autograd.grad(y, (x, weight, bias), grad_out)
    by_hand = conv2d_backward(grad_out, x.detach(), weight.detach(), stride, padding, dilation, groups)
    for ours, theirs in zip(by_hand, by_autograd, strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)
    y = conv_transpose2d(grad_out, weight, None, stride, padding, 0, dilation, groups)  # back onto x's size or less
    upstream = torch.randn_like(y)
    by_autograd = torch.autograd.grad(y, weight, upstream)[0]
    by_hand = conv_transpose2d_backward(upstream, grad_out, weight.detach(), stride, padding, 0, dilation, groups)[1]
    torch.testing.assert_close(by_hand, by_autograd, **TOL)


@pytest.mark.parametrize("index", range(len(CONV_CASES)))
def test_im2col_and_col2im_match_unfold_and_fold(index):
    *_, h, w, _, stride, padding, dilation, _ = CONV_CASES[index]
    x, weight, _ = conv_inputs(CONV_CASES[index], seed=400 + index)
    kernel = tuple(weight.shape[2:])
    cols = F.unfold(x, kernel, dilation, padding, stride)
    torch.testing.assert_close(im2col(x, kernel, stride, padding, dilation), cols, atol=0, rtol=0)  # a pure copy
    torch.testing.assert_close(col2im(cols, (h, w), kernel, stride, padding, dilation),
                               F.fold(cols, (h, w), kernel, dilation, padding, stride), **TOL)  # fmt: skip


def test_col2im_is_the_adjoint_of_im2col_and_conv_transpose2d_of_conv2d():
    """<im2col(x), c> = <x, col2im(c)> and <conv2d(x, w), y> = <x, conv_transpose2d(y, w)>."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(2, 4, 11, 11, dtype=torch.float64, generator=generator)
    weight = torch.randn(6, 2, 3, 2, dtype=torch.float64, generator=generator)
    geometry = {"stride": (2, 3), "padding": (1, 2), "dilation": (2, 1)}
    cols = torch.randn_like(im2col(x, (3, 2), **geometry))
    torch.testing.assert_close((im2col(x, (3, 2), **geometry) * cols).sum(),
                               (x * col2im(cols, (11, 11), (3, 2), **geometry)).sum())  # fmt: skip
    y = torch.randn_like(conv2d(x, weight, groups=2, **geometry))
    # Widths 10 and 11 both give 5 windows; output_padding picks 11, the width of x.
    x_back = conv_transpose2d(y, weight, output_padding=(0, 1), groups=2, **geometry)
    assert x_back.shape == x.shape
    torch.testing.assert_close((conv2d(x, weight, groups=2, **geometry) * y).sum(), (x * x_back).sum())


# ----------------------------------------------------------------------------------------------- by hand

# Computed once by hand from the definitions (stride 1, no padding) and pasted: L = sum(Y * G), G the upstream gradient.
#   Y[i, j]     = sum_{k, l} X[i + k, j + l] K[k, l]
#   dL/dK[k, l] = sum_{i, j} G[i, j] X[i + k, j + l]
#   dL/dX[a, b] = sum_{i, j} G[i, j] K[a - i, b - j]
X = [[1, 2, 0, 3, 1],
     [0, 1, 2, 1, 0],
     [2, 0, 1, 0, 3],
     [1, 3, 0, 2, 1],
     [0, 1, 1, 0, 2]]  # fmt: skip
K = [[1, 0, -1],
     [2, 1, 0],
     [0, -1, 1]]  # fmt: skip
Y = [[3, 2, 7],
     [-1, 3, 3],
     [6, 5, 2]]  # fmt: skip
G = [[1, 0, 2],
     [0, 1, 1],
     [2, 1, 0]]  # fmt: skip
DL_DK = [[8, 12, 5],
         [10, 10, 7],
         [8, 5, 12]]  # fmt: skip
DL_DX = [[1, 0, 1, 0, -2],
         [2, 2, 5, 1, -1],
         [2, 2, 2, -2, 2],
         [4, 4, 0, 0, 1],
         [0, -2, 1, 1, 0]]  # fmt: skip


def test_worked_5x5_example_is_reproduced_exactly():
    x, k, g = (torch.tensor(a, dtype=torch.float64)[None, None] for a in (X, K, G))
    assert torch.equal(conv2d(x, k), torch.tensor(Y, dtype=torch.float64)[None, None])
    grad_x, grad_k, grad_b = conv2d_backward(g, x, k)
    assert torch.equal(grad_k, torch.tensor(DL_DK, dtype=torch.float64)[None, None])
    assert torch.equal(grad_x, torch.tensor(DL_DX, dtype=torch.float64)[None, None])
    assert torch.equal(grad_b, torch.tensor([8.0], dtype=torch.float64))  # sum(G)
    # dL/dX is the full convolution of G with K, i.e. the full correlation with K rotated by 180 degrees.
    assert torch.equal(convolve2d(g[0, 0], k[0, 0], "full"), grad_x[0, 0])
    assert torch.equal(correlate2d(g[0, 0], k[0, 0].rot90(2), "full"), grad_x[0, 0])


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [(9, 3, 1, 0, 1), (9, 3, 2, 1, 1), (11, 3, 1, 0, 2), (10, 2, 3, 1, 2), (12, 4, 2, 1, 1)],
)
def test_input_gradient_is_a_full_convolution_with_the_rotated_kernel(size, kernel, stride, padding, dilation):
    """dL/dx[c] = sum_o (G_up[o] * w_d[o, c])[p : p + H]: G dilated by the stride, the kernel by the dilation."""
    generator = torch.Generator().manual_seed(size)
    x = torch.randn(1, 2, size, size, dtype=torch.float64, generator=generator)
    weight = torch.randn(3, 2, kernel, kernel, dtype=torch.float64, generator=generator)
    out = conv_output_size(size, kernel, stride, padding, dilation)
    assert (size + 2 * padding - dilation * (kernel - 1) - 1) % stride == 0  # the full convolution ends at H + 2p
    grad_out = torch.randn(1, 3, out, out, dtype=torch.float64, generator=generator)
    grad_x = conv2d_backward(grad_out, x, weight, stride, padding, dilation)[0]

    grad_up = torch.zeros(3, (out - 1) * stride + 1, (out - 1) * stride + 1, dtype=torch.float64)
    grad_up[:, ::stride, ::stride] = grad_out[0]
    span = dilation * (kernel - 1) + 1
    weight_dilated = torch.zeros(3, 2, span, span, dtype=torch.float64)
    weight_dilated[:, :, ::dilation, ::dilation] = weight
    crop = slice(padding, padding + size)
    for c in range(2):
        full = sum(convolve2d(grad_up[o], weight_dilated[o, c], "full") for o in range(3))
        rotated = sum(correlate2d(grad_up[o], weight_dilated[o, c].rot90(2), "full") for o in range(3))
        torch.testing.assert_close(full[crop, crop], grad_x[0, c], **TOL)
        torch.testing.assert_close(rotated[crop, crop], grad_x[0, c], **TOL)


# ---------------------------------------------------------------------------------- properties of the layer


@pytest.mark.parametrize(("stride", "shift"), [(1, (1, 2)), (2, (2, 4)), ((1, 3), (2, 3))])
def test_conv2d_is_shift_equivariant(stride, shift):
    """Shifting the input by a multiple of the stride shifts the output by that multiple divided by the stride."""
    generator = torch.Generator().manual_seed(1)
    x = torch.zeros(2, 3, 20, 20, dtype=torch.float64)
    x[:, :, 5:13, 5:13] = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=generator)  # zeros around: no wrap
    weight = torch.randn(4, 3, 3, 2, dtype=torch.float64, generator=generator)
    shifted = torch.roll(x, shifts=shift, dims=(2, 3))
    y, y_shifted = conv2d(x, weight, stride=stride), conv2d(shifted, weight, stride=stride)
    di, dj = shift[0] // pair(stride)[0], shift[1] // pair(stride)[1]
    torch.testing.assert_close(y_shifted[:, :, di:, dj:], y[:, :, : y.shape[2] - di, : y.shape[3] - dj], **TOL)


def test_conv2d_is_linear_in_its_input():
    generator = torch.Generator().manual_seed(2)
    x, z = torch.randn(2, 2, 4, 9, 8, dtype=torch.float64, generator=generator)
    weight = torch.randn(6, 2, 3, 3, dtype=torch.float64, generator=generator)
    a, b = 1.7, -0.4
    geometry = {"stride": 2, "padding": 1, "dilation": (1, 2), "groups": 2}
    combined = a * conv2d(x, weight, **geometry) + b * conv2d(z, weight, **geometry)
    torch.testing.assert_close(conv2d(a * x + b * z, weight, **geometry), combined, **TOL)


def test_conv_output_size_matches_the_shapes_torch_returns():
    checked = raised = 0
    for size in (1, 4, 5, 8, 11):
        for kernel in (1, 2, 3, 5):
            for stride in (1, 2, 3):
                for padding in (0, 1, 2):
                    for dilation in (1, 2):
                        x, weight = torch.zeros(1, 1, size, size + 1), torch.zeros(1, 1, kernel, kernel)
                        try:
                            shape = F.conv2d(x, weight, None, stride, padding, dilation).shape[2:]
                        except RuntimeError:
                            with pytest.raises(ValueError, match="< 1"):
                                conv_output_size(size, kernel, stride, padding, dilation)
                            raised += 1
                            continue
                        ours = tuple(conv_output_size(s, kernel, stride, padding, dilation) for s in (size, size + 1))
                        assert ours == tuple(shape), (size, kernel, stride, padding, dilation)
                        checked += 1
    assert checked > 300 and raised > 20


def test_conv_output_size_raises_when_no_window_fits():
    assert conv_output_size(5, 5) == 1
    with pytest.raises(ValueError, match=r"output size 0 < 1: size 4 padded by 0 .* kernel 5"):
        conv_output_size(4, 5)
    with pytest.raises(ValueError, match=r"output size 0 < 1.*dilated by 2 \(spans 5\)"):
        conv_output_size(4, 3, dilation=2)
    for bad in ({"stride": 0}, {"dilation": 0}, {"padding": -1}, {"kernel_size": 0}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be an int >= "):
            conv_output_size(8, **{"kernel_size": 3, **bad})


def test_works_on_the_dtype_of_its_inputs():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 10, 9, generator=generator)
    weight = torch.randn(6, 2, 3, 3, generator=generator)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 5e-2)):
        xd, wd = x.to(dtype), weight.to(dtype)
        y = conv2d(xd, wd, stride=2, padding=1, groups=2)
        assert y.dtype == dtype
        torch.testing.assert_close(y.double(), F.conv2d(xd.double(), wd.double(), None, 2, 1, 1, 2),
                                   atol=tol * 10, rtol=tol)  # fmt: skip
        grads = conv2d_backward(torch.ones_like(y), xd, wd, stride=2, padding=1, groups=2)
        assert all(g.dtype == dtype for g in grads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_device_of_its_inputs():
    x, weight = torch.randn(2, 4, 12, 12, device="cuda"), torch.randn(6, 2, 3, 3, device="cuda")
    y = conv2d(x, weight, stride=2, padding=1, groups=2)
    assert y.device == x.device
    torch.testing.assert_close(y, F.conv2d(x, weight, None, 2, 1, 1, 2), atol=1e-4, rtol=1e-4)
    x = x.requires_grad_()
    F.conv2d(x, weight, None, 2, 1, 1, 2).backward(torch.ones_like(y))
    torch.testing.assert_close(conv2d_backward(torch.ones_like(y), x.detach(), weight, 2, 1, 1, 2)[0], x.grad,
                               atol=1e-4, rtol=1e-4)  # fmt: skip


# ------------------------------------------------------------------------------ correlation, convolution


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
@pytest.mark.parametrize(
    ("x_shape", "k_shape"), [((6, 7), (3, 3)), ((6, 7), (2, 4)), ((5, 5), (4, 1)), ((8, 6), (1, 1))]
)
def test_correlate2d_and_convolve2d_match_scipy(mode, x_shape, k_shape):
    """Even kernel sizes included: "same" centres them as scipy does."""
    signal = pytest.importorskip("scipy.signal")
    generator = torch.Generator().manual_seed(4)
    x, k = torch.randn(*x_shape, dtype=torch.float64, generator=generator), torch.randn(*k_shape, dtype=torch.float64)
    for ours, theirs in ((correlate2d, signal.correlate2d), (convolve2d, signal.convolve2d)):
        torch.testing.assert_close(ours(x, k, mode), torch.from_numpy(theirs(x.numpy(), k.numpy(), mode)), **TOL)


def test_convolution_is_commutative_and_correlation_is_not():
    generator = torch.Generator().manual_seed(5)
    x, k = torch.randn(6, 5, dtype=torch.float64, generator=generator), torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(convolve2d(x, k, "full"), convolve2d(k, x, "full"), **TOL)
    assert not torch.allclose(correlate2d(x, k, "full"), correlate2d(k, x, "full"))
    torch.testing.assert_close(correlate2d(x, k, "full"), correlate2d(k, x, "full").rot90(2), **TOL)  # x*k = rot(k*x)


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
def test_convolution_is_correlation_with_the_kernel_rotated_by_180_degrees(mode):
    generator = torch.Generator().manual_seed(6)
    x, k = torch.randn(7, 6, dtype=torch.float64, generator=generator), torch.randn(3, 3, dtype=torch.float64)
    torch.testing.assert_close(convolve2d(x, k, mode), correlate2d(x, k.rot90(2), mode), **TOL)
    assert not torch.allclose(convolve2d(x, k, mode), correlate2d(x, k, mode))
    # and deep learning's "convolution" is the correlation
    torch.testing.assert_close(conv2d(x[None, None], k[None, None])[0, 0], correlate2d(x, k), **TOL)


# ------------------------------------------------------------------------------------------------ Toeplitz


def test_toeplitz_matrix_1d_literal():
    expected = torch.tensor([[1, 2, 3, 0, 0], [0, 1, 2, 3, 0], [0, 0, 1, 2, 3]], dtype=torch.float64)
    assert torch.equal(toeplitz_matrix_1d(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), 5), expected)


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_toeplitz_matrix_1d_times_x_is_the_correlation(mode, k):
    generator = torch.Generator().manual_seed(k)
    kernel, x = torch.randn(k, dtype=torch.float64, generator=generator), torch.randn(9, dtype=torch.float64)
    matrix = toeplitz_matrix_1d(kernel, 9, mode)
    assert matrix.shape == ({"valid": 10 - k, "full": 8 + k, "same": 9}[mode], 9)
    torch.testing.assert_close(matrix @ x, correlate2d(x[None], kernel[None], mode)[0], **TOL)
    assert torch.equal(matrix[1:, 1:], matrix[:-1, :-1])  # constant along every diagonal: Toeplitz


def test_toeplitz_matrix_2d_is_doubly_block_toeplitz_and_computes_conv2d():
    generator = torch.Generator().manual_seed(8)
    (height, width), (kh, kw) = (6, 7), (3, 2)
    kernel, x = torch.randn(kh, kw, dtype=torch.float64, generator=generator), torch.randn(height, width).double()
    matrix = toeplitz_matrix_2d(kernel, height, width)
    out_h, out_w = height - kh + 1, width - kw + 1
    assert matrix.shape == (out_h * out_w, height * width)
    torch.testing.assert_close(matrix @ x.flatten(), conv2d(x[None, None], kernel[None, None]).flatten(), **TOL)
    blocks = matrix.reshape(out_h, out_w, height, width).permute(0, 2, 1, 3)  # [block row i, block column a, W', W]
    for i in range(out_h):
        for a in range(height):
            k = a - i
            expected = toeplitz_matrix_1d(kernel[k], width) if 0 <= k < kh else torch.zeros(out_w, width).double()
            assert torch.equal(blocks[i, a], expected), (i, a)


def test_toeplitz_backward_is_the_transpose_and_equals_conv2d_backward():
    generator = torch.Generator().manual_seed(9)
    kernel = torch.randn(3, 3, dtype=torch.float64, generator=generator)
    x = torch.randn(7, 8, dtype=torch.float64, generator=generator).requires_grad_()
    matrix = toeplitz_matrix_2d(kernel, 7, 8)
    grad_out = torch.randn(5, 6, dtype=torch.float64, generator=generator)
    (matrix @ x.flatten()).backward(grad_out.flatten())
    grad_x = conv2d_backward(grad_out[None, None], x.detach()[None, None], kernel[None, None])[0][0, 0]
    torch.testing.assert_close(matrix.T @ grad_out.flatten(), x.grad.flatten(), **TOL)
    torch.testing.assert_close(matrix.T @ grad_out.flatten(), grad_x.flatten(), **TOL)
    # ... which is the transposed convolution of the gradient
    torch.testing.assert_close(conv_transpose2d(grad_out[None, None], kernel[None, None])[0, 0], grad_x, **TOL)


# ---------------------------------------------------------------------------------------------- bad input

x8, w8 = torch.zeros(2, 3, 8, 8), torch.zeros(5, 4, 3, 3)
BAD_INPUTS = [
    (lambda: conv2d(x8, w8), r"x has 3 channels \[2, 3, 8, 8\] but weight expects 4 \(\[5, 4, 3, 3\]\)"),
    (lambda: conv2d(torch.zeros(2, 4, 8, 8), torch.zeros(6, 1, 3, 3), groups=2),
     r"x has 4 channels \[2, 4, 8, 8\] but weight expects 2 \(\[6, 1, 3, 3\], 1 per group x 2 groups\)"),
    (lambda: conv2d(torch.zeros(2, 4, 8, 8), torch.zeros(6, 2, 3, 3), groups=3),
     r"groups=3 does not divide the 4 channels of x \(x \[2, 4, 8, 8\], weight \[6, 2, 3, 3\]\)"),
    (lambda: conv2d(torch.zeros(2, 4, 8, 8), torch.zeros(5, 2, 3, 3), groups=2),
     r"groups=2 does not divide the 5 output channels of weight \(x \[2, 4, 8, 8\], weight \[5, 2, 3, 3\]\)"),
    (lambda: conv2d(torch.zeros(3, 8, 8), w8), r"x must have shape \[N, C, H, W\], got \[3, 8, 8\]"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3)), r"weight must have shape \[N, C, H, W\], got \[5, 3, 3\]"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3, 3), stride=0), r"stride must be positive, got 0"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3, 3), stride=(1, -2)), r"stride must be positive, got \(1, -2\)"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3, 3), padding=-1), r"padding must be at least 0"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3, 3), groups=0), r"groups must be a positive int"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 9, 3)), r"x \[2, 3, 8, 8\] with kernel \(9, 3\): output size 0 < 1"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3, 3), torch.zeros(4)), r"bias \[4\] must have shape \[5\]"),
    (lambda: conv2d(x8, torch.zeros(5, 3, 3, 3, dtype=torch.float64)), r"x \(torch.float32 .*\) and weight"),
    (lambda: conv2d(x8.long(), torch.zeros(5, 3, 3, 3).long()), r"must share one floating point dtype"),
    (lambda: conv2d_backward(torch.zeros(2, 5, 5, 5), x8, torch.zeros(5, 3, 3, 3)),
     r"grad_out \[2, 5, 5, 5\] must have the output's shape \[2, 5, 6, 6\] for x \[2, 3, 8, 8\] and weight"),
    (lambda: conv_transpose2d(x8, torch.zeros(4, 2, 3, 3)), r"x has 3 channels \[2, 3, 8, 8\] but weight expects 4"),
    (lambda: conv_transpose2d(x8, torch.zeros(3, 2, 3, 3), stride=2, output_padding=2),
     r"output_padding \(2, 2\) must be smaller than stride \(2, 2\) or dilation \(1, 1\)"),
    (lambda: conv_transpose2d(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), padding=1), r"empty output"),
    (lambda: conv_transpose2d_backward(torch.zeros(2, 2, 8, 8), x8, torch.zeros(3, 2, 3, 3)),
     r"grad_out \[2, 2, 8, 8\] must have the output's shape \[2, 2, 10, 10\]"),
    (lambda: im2col(x8, 3, dilation=0), r"dilation must be positive"),
    (lambda: im2col(x8, (3, 3, 3)), r"kernel_size must be an int or a pair of ints"),
    (lambda: col2im(torch.zeros(2, 27, 35), (8, 8), 3),
     r"cols \[2, 27, 35\] do not fit output_size \(8, 8\) with kernel \(3, 3\): expected \[N, C \* 9, 36\]"),
    (lambda: correlate2d(torch.zeros(4, 4), torch.zeros(3, 3), "circular"), r"mode must be one of"),
    (lambda: correlate2d(torch.zeros(2, 4), torch.zeros(3, 3)),
     r"mode 'valid' needs the kernel \[3, 3\] to fit in x \[2, 4\]"),
    (lambda: convolve2d(torch.zeros(4, 4, 1), torch.zeros(3, 3)), r"x must be a non-empty 2D tensor, got \[4, 4, 1\]"),
    (lambda: toeplitz_matrix_1d(torch.zeros(4), 3), r"kernel \[4\] to fit in x \[3\]"),
    (lambda: toeplitz_matrix_2d(torch.zeros(3, 3), 2, 5), r"kernel \[3, 3\] to fit in x \[2, 5\]"),
]


@pytest.mark.parametrize("index", range(len(BAD_INPUTS)))
def test_bad_input_raises_a_value_error_that_names_the_shapes(index):
    call, message = BAD_INPUTS[index]
    with pytest.raises(ValueError, match=message):
        call()
