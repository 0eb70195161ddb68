"""The generative package: lazy re-exports of its public names, and no torch at ``import mpenv``/``generative``."""

import subprocess
import sys

import pytest


def test_import_mpenv_and_generative_do_not_import_torch():
    code = "import sys, mpenv, generative; dir(generative); assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_public_names_are_the_defining_modules_objects():
    import generative
    from generative import MADE, VAE, VQVAE, FitHistory, GatedPixelCNN, data, sample_quality  # the obvious imports
    from generative.autoregressive import MADE as made
    from generative.fit import FitHistory as fit_history
    from generative.metrics import sample_quality as quality
    from generative.vae import VAE as vae
    from generative.vqvae import VQVAE as vqvae

    assert (MADE, VAE, VQVAE, FitHistory, sample_quality) == (made, vae, vqvae, fit_history, quality)
    assert GatedPixelCNN.__module__ == "generative.autoregressive.pixelcnn" and data.__name__ == "generative.data"
    assert {"MADE", "VAE", "ConditionalVAE", "CausalTransformer", "Autoencoder", "data"} <= set(dir(generative))
    for name in generative.__all__:
        assert getattr(generative, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        generative.Nope  # noqa: B018
