"""Generative models of the course: autoencoders, the VAE family, VQ-VAE, autoregressive models,
normalizing flows, GANs and diffusion. Filled by later milestones; every torch module here goes through
:mod:`mpenv.device` for device selection and seeding."""
