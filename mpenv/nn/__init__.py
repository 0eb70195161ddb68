"""The course's neural-network foundations written by hand: convolution, pooling, activations, MLP backprop, the
perceptron, recurrent networks with backpropagation through time, and the optimizers.

Where the point is the gradient, it is computed without autograd and checked against torch's own modules. The main
names are re-exported here and loaded on first use, so ``import mpenv.nn`` imports no torch::

    from mpenv.nn import conv2d, conv2d_backward, LSTM
    from mpenv.nn.optim import Nesterov

- :mod:`mpenv.nn.conv` -- convolution as a matrix product (im2col), its backward pass, the transposed convolution,
  the Toeplitz matrix of a convolution, correlation against convolution, the output-size formula.
- :mod:`mpenv.nn.pooling` -- max and average pooling, forward and backward.
- :mod:`mpenv.nn.activations` -- activation functions and their derivatives; cross-entropy and binary
  cross-entropy with logits and their gradients.
- :mod:`mpenv.nn.mlp` -- a multilayer perceptron with a hand-written backward pass (the delta recursion).
- :mod:`mpenv.nn.perceptron` -- Rosenblatt's perceptron algorithm.
- :mod:`mpenv.nn.recurrent` -- RNN, LSTM and GRU cells and layers with hand-written BPTT (full and truncated),
  gradient clipping by global norm, the Jacobian-product norms that vanish or explode, and a torch-module
  wrapper whose autograd backward is the hand-written BPTT.
- :mod:`mpenv.nn.optim` -- SGD, Polyak momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW as
  ``torch.optim.Optimizer`` subclasses.
"""

from __future__ import annotations

from mpenv.lazy import lazy_exports

# Re-exported names by home submodule; a new submodule adds one line here.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "conv": ("conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward", "conv_output_size",
             "im2col", "col2im", "correlate2d", "convolve2d", "toeplitz_matrix_1d", "toeplitz_matrix_2d"),
    "pooling": ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"),
    "activations": ("ACTIVATIONS", "activation", "activation_derivative", "cross_entropy_with_logits",
                    "cross_entropy_with_logits_backward", "bce_with_logits", "bce_with_logits_backward"),
    "mlp": ("MLP",),
    "perceptron": ("PerceptronResult", "train_perceptron"),
    "recurrent": ("RNN", "LSTM", "GRU", "RecurrentModule", "clip_grad_norm", "jacobian_product_norms"),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, submodules=("optim",))
