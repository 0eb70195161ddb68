"""mpenv.nn.pooling against torch: max and average pooling, forward (values and indices) and the hand-written backward
pass against autograd, torch's tie rule, worked examples and the input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mpenv.nn.pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

TOL = {"atol": 1e-6, "rtol": 1e-6}

# (N, C, H, W, kernel, stride, padding, dilation)
CASES = [
    (2, 3, 8, 8, 2, None, 0, 1),  # the classic: 2x2 windows side by side
    (2, 3, 9, 8, 3, None, 1, 1),
    (1, 2, 9, 11, (3, 2), (2, 1), (1, 1), 1),  # non-square kernel
    (2, 2, 10, 10, 3, 1, 1, 1),  # overlapping windows
    (1, 3, 11, 10, 3, 2, 1, 2),  # dilation 2
    (2, 2, 9, 12, (2, 3), 3, (1, 0), (2, 1)),
    (1, 2, 13, 13, 2, 4, 0, 1),  # stride > kernel: pixels no window reads
    (1, 1, 7, 7, 7, None, 3, 1),  # a 7x7 window over a padded 7x7 image
    (2, 3, 6, 7, (1, 3), (1, 2), (0, 1), 1),
    (1, 2, 12, 9, 4, 2, 2, 1),
    (2, 1, 5, 6, 3, (2, 3), 0, (1, 2)),
    (1, 2, 8, 8, 3, 3, 1, 1),
]
AVG_CASES = [(case, include) for case in CASES if case[-1] == 1 for include in (True, False)]  # avg has no dilation


def inputs(case, seed):
    n, c, h, w, *_ = case
    return torch.randn(n, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("index", range(len(CASES)))
def test_max_pool2d_matches_torch(index):
    *_, kernel, stride, padding, dilation = CASES[index]
    x = inputs(CASES[index], seed=index)
    expected, expected_indices = F.max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
    values, indices = max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
    torch.testing.assert_close(values, expected, atol=0, rtol=0)  # a selection, not arithmetic
    assert indices.dtype == torch.int64 and torch.equal(indices, expected_indices)
    torch.testing.assert_close(max_pool2d(x, kernel, stride, padding, dilation), expected, atol=0, rtol=0)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_max_pool2d_backward_matches_autograd(index):
    *_, kernel, stride, padding, dilation = CASES[index]
    x = inputs(CASES[index], seed=100 + index).requires_grad_()
    y = F.max_pool2d(x, kernel, stride, padding, dilation)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    torch.testing.assert_close(max_pool2d_backward(grad_out, x.detach(), kernel, stride, padding, dilation), x.grad,
                               **TOL)  # fmt: skip


@pytest.mark.parametrize(("index", "count_include_pad"), [(i, include) for i, (_, include) in enumerate(AVG_CASES)])
def test_avg_pool2d_matches_torch(index, count_include_pad):
    case = AVG_CASES[index][0]
    *_, kernel, stride, padding, _ = case
    x = inputs(case, seed=200 + index)
    expected = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)
    torch.testing.assert_close(avg_pool2d(x, kernel, stride, padding, count_include_pad), expected, **TOL)


@pytest.mark.parametrize(("index", "count_include_pad"), [(i, include) for i, (_, include) in enumerate(AVG_CASES)])
def test_avg_pool2d_backward_matches_autograd(index, count_include_pad):
    case = AVG_CASES[index][0]
    *_, kernel, stride, padding, _ = case
    x = inputs(case, seed=300 + index).requires_grad_()
    y = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    ours = avg_pool2d_backward(grad_out, x.detach(), kernel, stride, padding, count_include_pad)
    torch.testing.assert_close(ours, x.grad, **TOL)


# ------------------------------------------------------------------------------------------------ ties, by hand


def test_ties_go_to_the_first_maximum_in_the_window_as_in_torch():
    x = torch.tensor([[[[1.0, 3.0, 3.0, 0.0],
                        [3.0, 2.0, 1.0, 3.0]]]], dtype=torch.float64)  # fmt: skip
    _, indices = max_pool2d(x, 2, return_indices=True)
    assert indices.tolist() == [[[[1, 2]]]]  # the first 3 of each window in row-major order
    grad_x = max_pool2d_backward(torch.ones(1, 1, 1, 2, dtype=torch.float64), x, 2)
    assert grad_x.tolist() == [[[[0, 1, 1, 0],
                                 [0, 0, 0, 0]]]]  # fmt: skip
    # Many ties over overlapping, dilated, padded windows: the same indices and gradients as torch.
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (2, 3, 9, 10), generator=generator).double().requires_grad_()
    for kernel, stride, padding, dilation in ((3, 1, 1, 1), (2, 1, 0, 2), ((3, 2), (2, 1), (1, 1), 1)):
        x.grad = None
        y, expected = F.max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
        grad_out = torch.randn_like(y)
        y.backward(grad_out)
        assert torch.equal(max_pool2d(x.detach(), kernel, stride, padding, dilation, return_indices=True)[1], expected)
        torch.testing.assert_close(max_pool2d_backward(grad_out, x.detach(), kernel, stride, padding, dilation),
                                   x.grad, **TOL)  # fmt: skip


def test_a_window_of_only_minus_infinity_picks_its_first_pixel_inside_the_image():
    x = torch.full((1, 1, 3, 3), -torch.inf, dtype=torch.float64)
    expected = F.max_pool2d(x, 2, 1, 1, return_indices=True)[1]
    assert torch.equal(max_pool2d(x, 2, 1, 1, return_indices=True)[1], expected)


def test_max_pool_backward_sums_the_gradients_of_windows_that_share_a_maximum():
    x = torch.tensor([[0, 1, 0],
                      [2, 9, 3],
                      [0, 4, 0]], dtype=torch.float64)[None, None]  # fmt: skip
    grad_out = torch.tensor([[1, 2],
                             [3, 4]], dtype=torch.float64)[None, None]  # fmt: skip
    assert max_pool2d(x, 2, stride=1).tolist() == [[[[9, 9], [9, 9]]]]
    assert max_pool2d_backward(grad_out, x, 2, stride=1).tolist() == [[[[0, 0, 0],
                                                                         [0, 10, 0],
                                                                         [0, 0, 0]]]]  # fmt: skip


def test_avg_pool_by_hand_with_and_without_the_padding_in_the_count():
    x = torch.tensor([[1, 2],
                      [3, 6]], dtype=torch.float64)[None, None]  # fmt: skip
    # 2x2 windows, stride 1, padding 1: 3x3 windows; the corner ones hold one pixel of x, the middle one all four.
    assert avg_pool2d(x, 2, 1, 1).tolist() == [[[[0.25, 0.75, 0.5], [1.0, 3.0, 2.0], [0.75, 2.25, 1.5]]]]
    assert avg_pool2d(x, 2, 1, 1, count_include_pad=False).tolist() == [[[[1, 1.5, 2], [2, 3, 4], [3, 4.5, 6]]]]
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    assert avg_pool2d_backward(ones, x, 2, 1, 1).tolist() == [[[[1, 1], [1, 1]]]]  # four windows of 1/4 each
    assert avg_pool2d_backward(ones, x, 2, 1, 1, count_include_pad=False).tolist() == [[[[2.25, 2.25], [2.25, 2.25]]]]


def test_pooling_keeps_the_dtype_of_its_input():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for dtype in (torch.float32, torch.bfloat16):
        xd = x.to(dtype)
        for forward, backward in ((max_pool2d, max_pool2d_backward), (avg_pool2d, avg_pool2d_backward)):
            y = forward(xd, 3, 2, 1)
            assert y.dtype == dtype and backward(torch.ones_like(y), xd, 3, 2, 1).dtype == dtype
    torch.testing.assert_close(max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 3, 2, 1), atol=0, rtol=0)
    torch.testing.assert_close(avg_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1), atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- bad input

x8 = torch.zeros(2, 3, 8, 8)
BAD_INPUTS = [
    (lambda: max_pool2d(x8, 2, ceil_mode=True), r"ceil_mode=True is not supported"),
    (lambda: avg_pool2d(x8, 2, ceil_mode=True), r"ceil_mode=True is not supported"),
    (lambda: max_pool2d(x8, 3, padding=2), r"padding \(2, 2\) must be at most half the \(dilated\) kernel \(3, 3\)"),
    (lambda: avg_pool2d(x8, (2, 4), padding=(1, 3)), r"padding \(1, 3\) must be at most half"),
    (lambda: max_pool2d(x8, 2, stride=0), r"stride must be positive, got 0"),
    (lambda: avg_pool2d(x8, 0), r"kernel_size must be positive"),
    (lambda: max_pool2d(x8, 2, dilation=(1, 0)), r"dilation must be positive"),
    (lambda: max_pool2d(torch.zeros(3, 8, 8), 2), r"x must have shape \[N, C, H, W\], got \[3, 8, 8\]"),
    (lambda: max_pool2d(x8.long(), 2), r"x must be floating point"),
    (lambda: avg_pool2d(x8, 9), r"x \[2, 3, 8, 8\] with kernel \(9, 9\): output size 0 < 1"),
    (lambda: max_pool2d_backward(torch.zeros(2, 3, 3, 3), x8, 2),
     r"grad_out \[2, 3, 3, 3\] must have the output's shape \[2, 3, 4, 4\] for x \[2, 3, 8, 8\]"),
    (lambda: avg_pool2d_backward(torch.zeros(2, 3, 4), x8, 2), r"grad_out \[2, 3, 4\] must have the output's shape"),
]


@pytest.mark.parametrize("index", range(len(BAD_INPUTS)))
def test_bad_input_raises_a_value_error(index):
    call, message = BAD_INPUTS[index]
    with pytest.raises(ValueError, match=message):
        call()
