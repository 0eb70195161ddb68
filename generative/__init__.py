"""Generative models of the course, each verified against an independent reference.

Submodules (import them directly):

- :mod:`generative.data` -- scikit-learn's digits (grey and binarized, fixed stratified splits), Omniglot-28
  (shipped), 2D toy densities with exact log-densities, MNIST-format IDX files.
- :mod:`generative.autoencoder` -- MLP, convolutional, denoising and linear autoencoders.
- :mod:`generative.vae` -- VAE, beta-VAE, conditional VAE, the IWAE bound.
- :mod:`generative.vqvae` -- VQ-VAE with a categorical PixelCNN prior over its codes.
- :mod:`generative.autoregressive` -- FVSBN, NADE, MADE, PixelCNN, gated PixelCNN, WaveNet, causal transformer.
- :mod:`generative.fit` -- the one training loop (Adam, early stopping on validation).
- :mod:`generative.metrics` -- Frechet distance, KID, precision/recall on a shipped digits classifier's features.
- :mod:`generative.train` -- the ``mpenv-gen`` command.

Every model: ``Model(input_shape, ...)``, ``loss(x)``, ``log_prob(x)`` (nats per example) and ``sample(n)``.
Normalizing flows, GANs and diffusion come in a later milestone.
"""
