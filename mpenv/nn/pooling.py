"""Max and average pooling, forward and backward, on the windows of :func:`~mpenv.nn.conv.im2col`.

Pooling slides a ``kh x kw`` window with stride ``s`` (by default the window size: windows side by side), padding
``p`` and, for max pooling, dilation ``d`` over each channel separately and reduces it to one number. With
``R(i, j)`` the pixels ``(i s - p + k d, j s - p + l d)`` of window ``(i, j)``, for ``i < H'`` and ``j < W'`` (the
output size of a convolution, ``H' = floor((H + 2p - d (kh - 1) - 1) / s) + 1``)::

    max pooling       y[n, c, i, j] = max_{(a, b) in R(i, j)} x[n, c, a, b]          padding counts as -inf
    average pooling   y[n, c, i, j] = 1/|R| sum_{(a, b) in R(i, j)} x[n, c, a, b]     padding counts as 0

``|R|`` is ``kh kw`` with ``count_include_pad`` (torch's default) and the number of pixels of the window inside the
image without. There are no weights: both layers only shrink the feature map and make it less sensitive to small
shifts (max pooling: the winner may move inside its window without changing ``y``).

The backward pass hands each output's gradient back to the pixels its window read; windows that overlap add up::

    max:       dL/dx[a, b] = sum_{(i, j) : argmax R(i, j) = (a, b)} G[i, j]      only the winner gets the gradient
    average:   dL/dx[a, b] = sum_{(i, j) : (a, b) in R(i, j)} G[i, j] / |R(i, j)|

Both are :func:`~mpenv.nn.conv.col2im` of a column per window: ``G`` at the argmax and zero elsewhere, or ``G /
|R|`` everywhere. Ties go to the first maximum in the window (row-major), as torch's kernels do; a window of only
``-inf`` picks its first pixel inside the image, also as torch does.

As in torch, the padding may be at most half the (dilated) kernel, ``p <= (d (k - 1) + 1) // 2``, so every window
holds a pixel of the image, and ``ceil_mode`` (an extra window for a partial stride at the end) is not supported.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mpenv.nn.conv import IntPair, check_image, col2im, im2col, int_pair, windows_hw

__all__ = ["avg_pool2d", "avg_pool2d_backward", "max_pool2d", "max_pool2d_backward"]

Geometry = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


def _pooling_geometry(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, dilation: IntPair, ceil_mode: bool
) -> Geometry:
    """Kernel, stride (the kernel's when None), padding and dilation as pairs, checked as torch checks them."""
    check_image(x)
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got {x.dtype}")
    if ceil_mode:
        raise ValueError("ceil_mode=True is not supported: only the floor output size (torch's default)")
    kernel = int_pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else int_pair(stride, "stride", 1)
    padding, dilation = int_pair(padding, "padding", 0), int_pair(dilation, "dilation", 1)
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    if any(p > span // 2 for p, span in zip(padding, spans, strict=True)):
        raise ValueError(f"padding {padding} must be at most half the (dilated) kernel {spans}, so windows see x")
    windows_hw(x.shape, kernel, stride, padding, dilation)  # raises if no window fits
    return kernel, stride, padding, dilation


def _check_grad_out(grad_out: Tensor, x: Tensor, geometry: Geometry) -> None:
    expected = [*x.shape[:2], *windows_hw(x.shape, *geometry)]
    if not isinstance(grad_out, Tensor) or list(grad_out.shape) != expected:
        shape = list(grad_out.shape) if isinstance(grad_out, Tensor) else type(grad_out).__name__
        raise ValueError(f"grad_out {shape} must have the output's shape {expected} for x {list(x.shape)}")


def _windows(x: Tensor, geometry: Geometry, pad_value: float) -> Tensor:
    """The windows of every channel, ``[N, C, kh kw, H', W']``: im2col's columns with the channels split off."""
    out_hw = windows_hw(x.shape, *geometry)
    return im2col(x, *geometry, pad_value=pad_value).view(*x.shape[:2], -1, *out_hw)


def _fold_windows(window_grads: Tensor, x: Tensor, geometry: Geometry) -> Tensor:
    """``[N, C, kh kw, H', W']`` per-window gradients added back onto the pixels they came from, ``[N, C, H, W]``."""
    return col2im(window_grads.flatten(1, 2).flatten(2), x.shape[2:], *geometry)


# --------------------------------------------------------------------------------------------------- max pooling


def _window_argmax(x: Tensor, geometry: Geometry) -> tuple[Tensor, Tensor]:
    """The maximum of every window and its offset in the window, ``[N, C, H', W']`` each."""
    values = _windows(x, geometry, pad_value=-torch.inf)
    maxima, offsets = values.max(dim=2)  # torch.max returns the first of tied maxima
    if torch.isneginf(maxima).any():
        # A window of only -inf would pick a padding slot; torch picks the window's first pixel inside the image.
        inside = _windows(torch.ones_like(x[:1, :1]), geometry, pad_value=0.0)[0, 0]  # [kh kw, H', W']
        offsets = torch.where(torch.isneginf(maxima), inside.argmax(dim=0), offsets)
    return maxima, offsets


def max_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0, dilation: IntPair = 1,
    return_indices: bool = False, *, ceil_mode: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
    """Max pooling of ``x`` ``[N, C, H, W]`` -> ``[N, C, H', W']`` (torch's semantics). With ``return_indices``,
    also the position of each maximum in its channel, ``a W + b`` (int64), as ``F.max_pool2d`` returns it."""
    geometry = _pooling_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    maxima, offsets = _window_argmax(x, geometry)
    if not return_indices:
        return maxima
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
    out_h, out_w = maxima.shape[2:]
    rows = torch.arange(out_h, device=x.device)[:, None] * sh - ph + (offsets // kw) * dh  # i s - p + k d
    cols = torch.arange(out_w, device=x.device) * sw - pw + (offsets % kw) * dw
    return maxima, rows * x.shape[3] + cols


def max_pool2d_backward(
    grad_out: Tensor, x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:  # fmt: skip
    """``dL/dx`` of :func:`max_pool2d` for the upstream gradient ``grad_out``: each window's gradient goes to its
    maximum (the first one on ties), summed where windows share it."""
    geometry = _pooling_geometry(x, kernel_size, stride, padding, dilation, ceil_mode=False)
    _check_grad_out(grad_out, x, geometry)
    _, offsets = _window_argmax(x, geometry)
    kernel = geometry[0]
    winner = grad_out.new_zeros(*grad_out.shape[:2], kernel[0] * kernel[1], *grad_out.shape[2:])
    winner.scatter_(2, offsets.unsqueeze(2), grad_out.unsqueeze(2))  # G at the argmax slot, zero elsewhere
    return _fold_windows(winner, x, geometry)


# ----------------------------------------------------------------------------------------------- average pooling


def _window_sizes(x: Tensor, geometry: Geometry, count_include_pad: bool) -> Tensor | int:
    """``|R(i, j)|``: ``kh kw``, or the pixels of each window inside the image, ``[H', W']``."""
    kernel = geometry[0]
    if count_include_pad:
        return kernel[0] * kernel[1]
    return _windows(torch.ones_like(x[:1, :1]), geometry, pad_value=0.0).sum(dim=2)[0, 0]


def avg_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
    count_include_pad: bool = True, *, ceil_mode: bool = False,
) -> Tensor:  # fmt: skip
    """Average pooling of ``x`` ``[N, C, H, W]`` -> ``[N, C, H', W']`` (torch's semantics, zero padding; without
    ``count_include_pad`` the padding is left out of the mean)."""
    geometry = _pooling_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    return _windows(x, geometry, pad_value=0.0).sum(dim=2) / _window_sizes(x, geometry, count_include_pad)


def avg_pool2d_backward(
    grad_out: Tensor, x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Tensor:  # fmt: skip
    """``dL/dx`` of :func:`avg_pool2d`: each window's gradient ``G / |R|`` spread evenly over its pixels."""
    geometry = _pooling_geometry(x, kernel_size, stride, padding, 1, ceil_mode=False)
    _check_grad_out(grad_out, x, geometry)
    share = grad_out / _window_sizes(x, geometry, count_include_pad)
    kernel = geometry[0]
    return _fold_windows(share.unsqueeze(2).expand(-1, -1, kernel[0] * kernel[1], -1, -1), x, geometry)
