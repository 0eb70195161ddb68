"""The generative package: lazy re-exports, no torch at ``import mpenv``/``generative``, fit's thread default."""

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


def test_fit_runs_on_one_thread_by_default_and_restores_the_setting():
    """generative.fit.fit uses the CLIs' thread default (1), or the given count, and leaves torch's setting as
    it found it; threads=None trains on whatever torch has."""
    import torch

    from generative.autoregressive import FVSBN
    from generative.fit import fit

    x = (torch.rand(40, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for kwargs, expected in [({}, 1), ({"threads": 2}, 2), ({"threads": None}, 2)]:
            seen = []
            fit(FVSBN((6,)), x, x, epochs=2, on_epoch=lambda h, seen=seen: seen.append(torch.get_num_threads()),
                **kwargs)  # fmt: skip
            assert seen == [expected, expected] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
