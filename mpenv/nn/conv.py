"""Convolution as the course writes it and as a matrix product (im2col), its backward pass, the transposed
convolution, the Toeplitz matrix of a convolution, correlation against convolution, and the output-size formula.

A convolutional layer of deep learning computes a cross-correlation. For an input ``x`` of shape ``[N, C_in, H, W]``,
a weight ``w`` of shape ``[C_out, C_in, kh, kw]``, a bias ``b``, stride ``s``, zero padding ``p`` and dilation ``d``
(each per axis; written for the rows, the columns are the same)::

    y[n, o, i, j] = b[o] + sum_{c, k, l} w[o, c, k, l] x_pad[n, c, i s + k d, j s + l d]

    H' = floor((H + 2p - d (kh - 1) - 1) / s) + 1            the output size; d (kh - 1) + 1 is the dilated kernel

where ``x_pad`` is ``x`` with ``p`` zeros on every side. The same weights slide over the whole image (weight
sharing), so the layer is linear in ``x`` and commutes with shifts of the input by multiples of the stride (shift
equivariance), away from the borders.

**im2col.** Copy every receptive field into a column; the layer becomes one matrix product::

    cols[n, (c, k, l), (i, j)] = x_pad[n, c, i s + k d, j s + l d]           [N, C_in kh kw, H' W']
    y_mat = W_mat @ cols + b,        W_mat = w.reshape(C_out, C_in kh kw)      [N, C_out, H' W']

The rows of ``cols`` run over ``(c, k, l)`` and its columns over ``(i, j)``, both row-major: the layout of torch's
``F.unfold``. ``col2im`` is the adjoint of ``im2col``: it adds every column entry back onto the pixel it was copied
from, so a pixel shared by overlapping windows receives the sum (torch's ``F.fold``). With ``groups = g`` the
channels split into ``g`` blocks that are convolved independently (``w`` is ``[C_out, C_in / g, kh, kw]``; ``g =
C_in = C_out`` is the depthwise convolution): the same product, batched over the groups.

**Backward pass.** With the upstream gradient ``G = dL/dy`` flattened to ``G_mat`` ``[N, C_out, H' W']``, the
matrix product's rules give::

    dL/dW_mat = sum_n G_mat cols^T             (a correlation of x with G)
    dL/dcols  = W_mat^T G_mat
    dL/dx     = col2im(W_mat^T G_mat)           every window's gradient added back onto its pixels
    dL/db     = sum_{n, i, j} G

The course states ``dL/dx`` as a *full convolution of the output gradient with the kernel rotated by 180 degrees*.
Collecting the terms of ``dL/dx[a] = sum_{i, k : i s + k d - p = a} G[i] w[k]`` (rows shown, channels summed)::

    dL/dx[c, a, b] = sum_{o, k, l} G_up[o, a + p - k d, b + p - l d] w[o, c, k, l]

where ``G_up`` is ``G`` dilated by the stride (``s - 1`` zeros between neighbouring entries, zero outside). That is
the full convolution ``G_up * w_d`` (``w_d``: the kernel dilated by ``d``) read from index ``p`` on -- a convolution,
i.e. a correlation with the kernel rotated by 180 degrees, which slides the gradient back over every pixel a window
touched. For ``s = d = 1, p = 0`` it is the textbook ``dL/dx = full_correlation(G, rot180(w))``.

**Transposed convolution.** ``conv_transpose2d`` is the adjoint of ``x -> conv2d(x, w)``: ``col2im(W_mat^T x_mat)``,
the computation of ``dL/dx`` above with ``x`` in the place of ``G``; it upsamples by the stride. Its weight
``[C_in, C_out / g, kh, kw]`` is the weight of the convolution it transposes (whose input has ``C_out`` channels)::

    H_out = (H - 1) s - 2p + d (kh - 1) + output_padding + 1

Several input sizes give a convolution the same output size (the floor above); ``output_padding`` (less than ``s``
or ``d``) picks the larger one. Its backward pass is a forward convolution: ``dL/dx = conv2d(G, w)`` and ``dL/dw =
sum_n x_mat im2col(G)^T``. So the two layers trade places between the forward and the backward pass.

**Toeplitz matrix.** Being linear, the (valid) correlation of a signal is a matrix product ``y = T x``. In 1D,
``T[i, i + k] = w[k]``: constant along diagonals, a Toeplitz matrix of shape ``[n - k + 1, n]``. In 2D, with images
flattened row-major, ``T[(i, j), (i + k, j + l)] = w[k, l]``: block ``(i, i + k)`` of size ``[W', W]`` is the 1D
Toeplitz matrix of kernel row ``k``, so the blocks are themselves Toeplitz (doubly block Toeplitz). The backward
pass is ``dL/dx = T^T G``: the transposed matrix that names the transposed convolution.

**Correlation against convolution** (one channel; ``mode`` as in ``scipy.signal``)::

    correlation   (x star k)[i, j] = sum_{k, l} x[i + k, j + l] K[k, l]
    convolution   (x * k)[i, j]   = sum_{k, l} x[i - k, j - l] K[k, l]   = correlation with rot180(K)

Substituting ``m = i - k`` shows convolution is commutative, ``x * k = k * x``; correlation is not: ``x star k =
rot180(k star x)``. For a learned kernel the difference is only the flip, which is why deep learning calls its
correlation a convolution. ``mode``: ``"valid"`` (windows inside ``x``: ``H - kh + 1``), ``"full"`` (every overlap:
``H + kh - 1``), ``"same"`` (the size of ``x``, kernel element ``((kh - 1) // 2, (kw - 1) // 2)`` over the output
pixel, as scipy centres it).

Everything is vectorized, with no loop over pixels or kernel offsets: im2col is a strided view of the padded image
copied into columns, col2im a scatter-add with index tensors. It works on the dtype and device of its inputs;
``F.conv2d``, ``F.unfold`` and friends are only the reference in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "convolve2d",
    "correlate2d",
    "im2col",
    "toeplitz_matrix_1d",
    "toeplitz_matrix_2d",
]

IntPair = int | tuple[int, int]
MODES = ("valid", "full", "same")


# ----------------------------------------------------------------------------------------------- arguments, sizes
# int_pair, windows_hw and check_image are shared with pooling.py; they are not re-exported.


def int_pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as a (rows, columns) pair of ints, each at least ``minimum``."""
    values = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return values


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """``floor((size + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1``: the windows along one axis."""
    for name, value, minimum in (("size", size, 0), ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0), ("dilation", dilation, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    span = dilation * (kernel_size - 1) + 1  # the dilated kernel
    out = (size + 2 * padding - span) // stride + 1
    if out < 1:
        raise ValueError(
            f"output size {out} < 1: size {size} padded by {padding} on each side is smaller than the kernel "
            f"{kernel_size} dilated by {dilation} (spans {span})"
        )
    return out


def windows_hw(
    shape: torch.Size, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
    dilation: tuple[int, int], name: str = "x",
) -> tuple[int, int]:  # fmt: skip
    """``(H', W')`` of windows over the last two dimensions of ``shape``, with an error that names the tensor."""
    try:
        return tuple(conv_output_size(shape[a - 2], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    except ValueError as error:
        raise ValueError(f"{name} {list(shape)} with kernel {kernel}: {error}") from None


def _pad2d(x: Tensor, top: int, bottom: int, left: int, right: int, value: float = 0.0) -> Tensor:
    """``x`` framed by ``value`` on its last two dimensions (max pooling pads with ``-inf``, the rest with zeros)."""
    if top == bottom == left == right == 0:
        return x
    height, width = x.shape[-2:]
    padded = x.new_full((*x.shape[:-2], top + height + bottom, left + width + right), value)
    padded[..., top : top + height, left : left + width] = x
    return padded


def check_image(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape [N, C, H, W], got {shape}")


# ------------------------------------------------------------------------------------------------ im2col, col2im


def _window_indices(
    out_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    device: torch.device,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Rows ``[kh, 1, H', 1]`` and columns ``[1, kw, 1, W']`` of the padded image that window ``(i, j)`` reads at
    kernel offset ``(k, l)``: ``i s + k d`` and ``j s + l d``. They broadcast to ``[kh, kw, H', W']``."""
    offsets = [torch.arange(kernel[a], device=device)[:, None] * dilation[a] for a in (0, 1)]  # k d
    starts = [torch.arange(out_hw[a], device=device) * stride[a] for a in (0, 1)]  # i s
    rows, cols = offsets[0] + starts[0], offsets[1] + starts[1]
    return rows[:, None, :, None], cols[None, :, None, :]


def im2col(
    x: Tensor, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
    *, pad_value: float = 0.0,
) -> Tensor:  # fmt: skip
    """Every receptive field of ``x`` ``[N, C, H, W]`` as a column: ``[N, C kh kw, H' W']`` in ``F.unfold``'s layout.
    ``pad_value`` fills the padding (zeros for a convolution, ``-inf`` for max pooling)."""
    check_image(x)
    kernel, stride = int_pair(kernel_size, "kernel_size", 1), int_pair(stride, "stride", 1)
    padding, dilation = int_pair(padding, "padding", 0), int_pair(dilation, "dilation", 1)
    out_hw = windows_hw(x.shape, kernel, stride, padding, dilation)
    x_pad = _pad2d(x, padding[0], padding[0], padding[1], padding[1], pad_value)
    step_n, step_c, step_h, step_w = x_pad.stride()  # memory steps between neighbouring elements
    # windows[n, c, k, l, i, j] = x_pad[n, c, i s + k d, j s + l d] is a strided view of x_pad: one step in k or i
    # moves d or s rows. The reshape copies it into columns (10-100x faster than gathering with index tensors).
    windows = x_pad.as_strided(
        (*x_pad.shape[:2], *kernel, *out_hw),
        (step_n, step_c, step_h * dilation[0], step_w * dilation[1], step_h * stride[0], step_w * stride[1]),
        x_pad.storage_offset(),
    )
    return windows.reshape(x.shape[0], -1, out_hw[0] * out_hw[1])


def col2im(
    cols: Tensor, output_size: IntPair, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:  # fmt: skip
    """The adjoint of :func:`im2col`: columns ``[N, C kh kw, L]`` added back onto an image ``[N, C, H, W]`` of size
    ``output_size`` (``F.fold``); where windows overlap, their entries sum."""
    height, width = int_pair(output_size, "output_size", 1)
    kernel, stride = int_pair(kernel_size, "kernel_size", 1), int_pair(stride, "stride", 1)
    padding, dilation = int_pair(padding, "padding", 0), int_pair(dilation, "dilation", 1)
    if not isinstance(cols, Tensor) or cols.dim() != 3:
        shape = list(cols.shape) if isinstance(cols, Tensor) else type(cols).__name__
        raise ValueError(f"cols must have shape [N, C kh kw, L], got {shape}")
    out_hw = windows_hw(torch.Size([height, width]), kernel, stride, padding, dilation, name="output_size")
    n, rows_per_window, windows = cols.shape
    if rows_per_window % (kernel[0] * kernel[1]) or windows != out_hw[0] * out_hw[1]:
        raise ValueError(
            f"cols {list(cols.shape)} do not fit output_size {(height, width)} with kernel {kernel}: expected "
            f"[N, C * {kernel[0] * kernel[1]}, {out_hw[0] * out_hw[1]}] ({out_hw[0]} x {out_hw[1]} windows)"
        )
    rows, columns = _window_indices(out_hw, kernel, stride, dilation, cols.device)
    padded_hw = (height + 2 * padding[0], width + 2 * padding[1])
    # Flat pixel index of every (k, l, i, j) entry, in the order of a column block's entries; index_add sums repeats.
    flat = (rows * padded_hw[1] + columns).expand(*kernel, *out_hw).reshape(-1)
    channels = rows_per_window // (kernel[0] * kernel[1])
    image = cols.new_zeros(n, channels, padded_hw[0] * padded_hw[1])
    image = image.index_add(2, flat, cols.reshape(n, channels, -1)).view(n, channels, *padded_hw)
    return image[:, :, padding[0] : padding[0] + height, padding[1] : padding[1] + width]


# ---------------------------------------------------------------------------------------------------- convolution


def _check_conv(x: Tensor, weight: Tensor, groups: int, transposed: bool = False) -> None:
    """Shapes, dtypes and devices of a (transposed) convolution's input and weight, naming both on a mismatch."""
    check_image(x)
    check_image(weight, "weight")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if not x.is_floating_point() or x.dtype != weight.dtype or x.device != weight.device:
        raise ValueError(
            f"x ({x.dtype} on {x.device}) and weight ({weight.dtype} on {weight.device}) must share one floating "
            "point dtype and device"
        )
    shapes = f"x {list(x.shape)}, weight {list(weight.shape)}"
    if x.shape[1] % groups:
        raise ValueError(f"groups={groups} does not divide the {x.shape[1]} channels of x ({shapes})")
    # A transposed convolution's weight is [C_in, C_out / g, kh, kw], a convolution's [C_out, C_in / g, kh, kw].
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    if not transposed and weight.shape[0] % groups:
        raise ValueError(f"groups={groups} does not divide the {weight.shape[0]} output channels of weight ({shapes})")
    if x.shape[1] != expected:
        per_group = f", {weight.shape[1]} per group x {groups} groups" if groups > 1 and not transposed else ""
        raise ValueError(
            f"x has {x.shape[1]} channels {list(x.shape)} but weight expects {expected} "
            f"({list(weight.shape)}{per_group})"
        )


def _check_bias(bias: Tensor | None, channels: int, weight: Tensor) -> None:
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (channels,)):
        shape = list(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"bias {shape} must have shape [{channels}] for weight {list(weight.shape)}")


def _check_grad(grad_out: Tensor, expected: tuple[int, ...], x: Tensor, weight: Tensor) -> None:
    if not isinstance(grad_out, Tensor) or tuple(grad_out.shape) != expected:
        shape = list(grad_out.shape) if isinstance(grad_out, Tensor) else type(grad_out).__name__
        raise ValueError(
            f"grad_out {shape} must have the output's shape {list(expected)} for x {list(x.shape)} and weight "
            f"{list(weight.shape)}"
        )


def _weight_matrix(weight: Tensor, groups: int) -> Tensor:
    """``W_mat`` per group: ``[g, rows / g, (rest) kh kw]``, whose columns match im2col's rows of one group."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def _grouped(matrix: Tensor, groups: int) -> Tensor:
    """``[N, rows, L]`` as ``[N, g, rows / g, L]``: groups are contiguous blocks of channels, hence of rows."""
    return matrix.reshape(matrix.shape[0], groups, -1, matrix.shape[-1])


def _conv_geometry(
    weight: Tensor, stride: IntPair, padding: IntPair, dilation: IntPair
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel = (weight.shape[2], weight.shape[3])
    return kernel, int_pair(stride, "stride", 1), int_pair(padding, "padding", 0), int_pair(dilation, "dilation", 1)


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0,
    dilation: IntPair = 1, groups: int = 1,
) -> Tensor:  # fmt: skip
    """The convolutional layer of deep learning (a cross-correlation), as ``W_mat @ im2col(x)`` per group:
    ``x [N, C_in, H, W]``, ``weight [C_out, C_in / groups, kh, kw]``, ``bias [C_out]`` -> ``[N, C_out, H', W']``."""
    _check_conv(x, weight, groups)
    _check_bias(bias, weight.shape[0], weight)
    kernel, stride, padding, dilation = _conv_geometry(weight, stride, padding, dilation)
    out_hw = windows_hw(x.shape, kernel, stride, padding, dilation)
    cols = _grouped(im2col(x, kernel, stride, padding, dilation), groups)  # [N, g, C_in / g kh kw, L]
    y = _weight_matrix(weight, groups) @ cols  # [g, C_out / g, K] @ [N, g, K, L], batched over N and g
    y = y.reshape(x.shape[0], weight.shape[0], *out_hw)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def _input_gradient(
    grad_mat: Tensor, weight: Tensor, image_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], dilation: tuple[int, int], groups: int,
) -> Tensor:  # fmt: skip
    """``col2im(W_mat^T G_mat)``: a convolution's gradient w.r.t. its input, and the transposed convolution."""
    grad_cols = _weight_matrix(weight, groups).transpose(1, 2) @ grad_mat  # [N, g, C_in / g kh kw, L]
    return col2im(grad_cols.flatten(1, 2), image_hw, kernel, stride, padding, dilation)


def conv2d_backward(
    grad_out: Tensor, x: Tensor, weight: Tensor, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
    groups: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The gradients of :func:`conv2d` for the upstream gradient ``grad_out`` ``[N, C_out, H', W']``, without
    autograd: ``(dL/dx, dL/dweight, dL/dbias)``; see the module docstring for the equations."""
    _check_conv(x, weight, groups)
    kernel, stride, padding, dilation = _conv_geometry(weight, stride, padding, dilation)
    out_hw = windows_hw(x.shape, kernel, stride, padding, dilation)
    _check_grad(grad_out, (x.shape[0], weight.shape[0], *out_hw), x, weight)
    cols = _grouped(im2col(x, kernel, stride, padding, dilation), groups)  # [N, g, K, L]
    grad_mat = _grouped(grad_out.flatten(2), groups)  # [N, g, C_out / g, L]
    grad_weight = (grad_mat @ cols.transpose(2, 3)).sum(dim=0).reshape(weight.shape)  # sum_n G_mat cols^T
    grad_x = _input_gradient(grad_mat, weight, x.shape[2:], kernel, stride, padding, dilation, groups)
    return grad_x, grad_weight, grad_out.sum(dim=(0, 2, 3))


# ------------------------------------------------------------------------------------------ transposed convolution


def _transposed_geometry(
    x: Tensor, weight: Tensor, stride: IntPair, padding: IntPair, output_padding: IntPair, dilation: IntPair,
) -> tuple[tuple[int, int], ...]:  # fmt: skip
    """Kernel, stride, padding, dilation and the output size ``(H_out, W_out)`` of a transposed convolution."""
    kernel, stride, padding, dilation = _conv_geometry(weight, stride, padding, dilation)
    output_padding = int_pair(output_padding, "output_padding", 0)
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation, strict=True)):
        raise ValueError(f"output_padding {output_padding} must be smaller than stride {stride} or dilation {dilation}")
    out_hw = tuple(
        (x.shape[2 + a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel[a] - 1) + output_padding[a] + 1
        for a in (0, 1)
    )
    if min(out_hw) < 1:
        raise ValueError(
            f"x {list(x.shape)} with weight {list(weight.shape)} and padding {padding} gives an empty output {out_hw}"
        )
    return kernel, stride, padding, dilation, out_hw


def _as_conv_output(x: Tensor, image_hw: tuple[int, int], geometry: tuple[tuple[int, int], ...]) -> Tensor:
    """``x`` as the output of the convolution over an ``image_hw`` image that the transposed convolution transposes.
    With ``output_padding >= stride`` (allowed below the dilation) that convolution has more windows than ``x`` has
    pixels; the extra ones are zero: the adjoint of dropping them."""
    kernel, stride, padding, dilation = geometry
    conv_hw = windows_hw(torch.Size(image_hw), kernel, stride, padding, dilation, name="output")
    return _pad2d(x, 0, conv_hw[0] - x.shape[2], 0, conv_hw[1] - x.shape[3])


def conv_transpose2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0,
    output_padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1,
) -> Tensor:  # fmt: skip
    """The transposed convolution (torch's semantics), the adjoint of :func:`conv2d` w.r.t. its input:
    ``x [N, C_in, H, W]``, ``weight [C_in, C_out / groups, kh, kw]`` -> ``[N, C_out, H_out, W_out]``."""
    _check_conv(x, weight, groups, transposed=True)
    _check_bias(bias, weight.shape[1] * groups, weight)
    *geometry, out_hw = _transposed_geometry(x, weight, stride, padding, output_padding, dilation)
    x_mat = _grouped(_as_conv_output(x, out_hw, geometry).flatten(2), groups)  # [N, g, C_in / g, L]
    y = _input_gradient(x_mat, weight, out_hw, *geometry, groups)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def conv_transpose2d_backward(
    grad_out: Tensor, x: Tensor, weight: Tensor, stride: IntPair = 1, padding: IntPair = 0,
    output_padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The gradients of :func:`conv_transpose2d` without autograd, ``(dL/dx, dL/dweight, dL/dbias)``: ``dL/dx`` is
    the forward convolution of ``grad_out`` and ``dL/dweight = sum_n x_mat im2col(grad_out)^T``."""
    _check_conv(x, weight, groups, transposed=True)
    *geometry, out_hw = _transposed_geometry(x, weight, stride, padding, output_padding, dilation)
    _check_grad(grad_out, (x.shape[0], weight.shape[1] * groups, *out_hw), x, weight)
    height, width = x.shape[2:]
    conv_hw = windows_hw(grad_out.shape, *geometry, name="grad_out")
    cols = im2col(grad_out, *geometry).unflatten(2, conv_hw)[..., :height, :width]  # windows beyond x: none of x's
    cols = _grouped(cols.flatten(2), groups)  # [N, g, C_out / g kh kw, H W]
    x_mat = _grouped(x.flatten(2), groups)  # [N, g, C_in / g, H W]
    grad_x = (_weight_matrix(weight, groups) @ cols).reshape(x.shape)  # conv2d(grad_out, weight)
    grad_weight = (x_mat @ cols.transpose(2, 3)).sum(dim=0).reshape(weight.shape)  # sum_n x_mat cols^T
    return grad_x, grad_weight, grad_out.sum(dim=(0, 2, 3))


# ------------------------------------------------------------------------------ correlation against convolution


def _check_signal(x: Tensor, kernel: Tensor, dims: int, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for name, tensor in (("x", x), ("kernel", kernel)):
        if not isinstance(tensor, Tensor) or tensor.dim() != dims or min(tensor.shape) < 1:
            shape = list(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(f"{name} must be a non-empty {dims}D tensor, got {shape}")
    if x.dtype != kernel.dtype or x.device != kernel.device:
        raise ValueError(f"x ({x.dtype} on {x.device}) and kernel ({kernel.dtype} on {kernel.device}) must match")
    if mode == "valid" and any(k > n for k, n in zip(kernel.shape, x.shape, strict=True)):
        raise ValueError(f"mode 'valid' needs the kernel {list(kernel.shape)} to fit in x {list(x.shape)}")


def _mode_padding(kernel_size: int, mode: str, anchor: int) -> tuple[int, int]:
    """Zeros before and after the signal for ``mode``; ``anchor`` is the kernel element over the output sample in
    ``"same"`` mode."""
    return {"valid": (0, 0), "full": (kernel_size - 1, kernel_size - 1), "same": (anchor, kernel_size - 1 - anchor)}[
        mode
    ]


def _correlate(x: Tensor, kernel: Tensor, mode: str, anchor: tuple[int, int]) -> Tensor:
    """``sum_{k, l} x_pad[i + k, j + l] K[k, l]``: one channel through :func:`im2col`, zero-padded for ``mode``."""
    (top, bottom), (left, right) = (_mode_padding(kernel.shape[a], mode, anchor[a]) for a in (0, 1))
    x_pad = _pad2d(x, top, bottom, left, right)
    out_hw = (x_pad.shape[0] - kernel.shape[0] + 1, x_pad.shape[1] - kernel.shape[1] + 1)
    cols = im2col(x_pad[None, None], tuple(kernel.shape))[0]  # [kh kw, L]
    return (kernel.reshape(1, -1) @ cols).reshape(out_hw)


def correlate2d(x: Tensor, k: Tensor, mode: str = "valid") -> Tensor:
    """The correlation ``(x star k)[i, j] = sum_{k, l} x[i + k, j + l] K[k, l]`` of a 2D signal, as
    ``scipy.signal.correlate2d``."""
    _check_signal(x, k, 2, mode)
    return _correlate(x, k, mode, anchor=((k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2))


def convolve2d(x: Tensor, k: Tensor, mode: str = "valid") -> Tensor:
    """The true convolution ``(x * k)[i, j] = sum_{k, l} x[i - k, j - l] K[k, l]``: the correlation with the kernel
    rotated by 180 degrees, as ``scipy.signal.convolve2d``."""
    _check_signal(x, k, 2, mode)
    # Element (kh - 1) // 2 of k sits over the output pixel in "same" mode; in the flipped kernel it is kh // 2.
    return _correlate(x, k.flip(0, 1), mode, anchor=(k.shape[0] // 2, k.shape[1] // 2))


# ---------------------------------------------------------------------------------------------- Toeplitz matrices


def toeplitz_matrix_1d(kernel: Tensor, n: int, mode: str = "valid") -> Tensor:
    """``T`` such that ``T @ x`` is the correlation of ``x`` ``[n]`` with ``kernel`` ``[k]`` (``"valid"``: ``T[i, i +
    j] = kernel[j]``, shape ``[n - k + 1, n]``; ``"full"`` and ``"same"`` pad ``x`` as :func:`correlate2d`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_signal(kernel.new_zeros(n), kernel, 1, mode)
    size = kernel.shape[0]
    before, after = _mode_padding(size, mode, (size - 1) // 2)
    rows = torch.arange(n + before + after - size + 1, device=kernel.device)[:, None]
    columns = rows - before + torch.arange(size, device=kernel.device)  # column of x that kernel[j] meets in row i
    inside = (columns >= 0) & (columns < n)  # the rest meets the zero padding
    matrix = kernel.new_zeros(rows.shape[0], n)
    matrix[rows.expand_as(columns)[inside], columns[inside]] = kernel.expand_as(columns)[inside]
    return matrix


def toeplitz_matrix_2d(kernel: Tensor, height: int, width: int) -> Tensor:
    """The doubly block Toeplitz ``T`` ``[(H - kh + 1)(W - kw + 1), H W]`` with ``T @ x.flatten()`` the valid
    correlation of ``x`` ``[H, W]`` with ``kernel`` ``[kh, kw]`` (conv2d's), flattened: ``T[(i, j), (i + k, j + l)] =
    K[k, l]``."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    _check_signal(kernel.new_zeros(height, width), kernel, 2, "valid")
    (kh, kw), device = kernel.shape, kernel.device
    out_h, out_w = height - kh + 1, width - kw + 1
    # Index tensors over (i, j, k, l), each along its own dimension of [H', W', kh, kw].
    i, j = torch.arange(out_h, device=device)[:, None, None, None], torch.arange(out_w, device=device)[:, None, None]
    k, l_ = torch.arange(kh, device=device)[:, None], torch.arange(kw, device=device)
    rows = (i * out_w + j).expand(out_h, out_w, kh, kw)
    columns = (i + k) * width + j + l_
    matrix = kernel.new_zeros(out_h * out_w, height * width)
    matrix[rows, columns] = kernel.expand(out_h, out_w, kh, kw)  # every (row, column) pair occurs once
    return matrix
