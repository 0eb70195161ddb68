"""generative.autoencoder: PCA's subspace from the linear autoencoder, learning and denoising on binarized
digits, and the errors a user meets."""

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from generative import data
from generative.autoencoder import Autoencoder, ConvAutoencoder, LinearAutoencoder
from generative.common import bernoulli_log_prob
from generative.fit import fit, mean_loss


@pytest.fixture(scope="module")
def binary_digits():
    return data.digits(binarize=True)


def test_linear_autoencoder_learns_the_pca_subspace():
    """Baldi & Hornik: the optimum of a linear AE with squared error spans the top-k principal components."""
    x = data.digits().train.reshape(-1, 64)
    k = 4
    torch.manual_seed(0)
    model = LinearAutoencoder((64,), latent_dim=k)
    # full-batch L-BFGS reaches the optimum in well under a second; Adam crawls along the small eigengaps
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=500, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)  # fmt: skip

    def closure():
        optimizer.zero_grad()
        loss = model.loss(x)
        loss.backward()
        return loss

    optimizer.step(closure)
    _, singular, vt = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    angles = subspace_angles(model.subspace().numpy(), vt[:k].T.numpy())
    assert np.degrees(angles).max() < 1.0
    # and its error is PCA's: half the variance outside the top-k components (Eckart-Young)
    pca_error = 0.5 * (singular[k:] ** 2).sum() / len(x)
    assert model.loss(x).item() == pytest.approx(pca_error.item(), rel=1e-3)


@pytest.mark.parametrize("make", [
    lambda: Autoencoder((1, 8, 8), latent_dim=8, hidden=(128,)),
    lambda: ConvAutoencoder((1, 8, 8), latent_dim=8, channels=(16, 32)),
], ids=["mlp", "conv"])  # fmt: skip
def test_autoencoders_reconstruct_binarized_digits(binary_digits, make):
    train, val, test = binary_digits
    torch.manual_seed(0)
    model = make()
    history = fit(model, train, val, epochs=40, lr=3e-3, patience=10)
    assert history.val_loss[history.best_epoch] == min(history.val_loss)
    # an 8-number code keeps most of the image: far below the 25.2 nats of independent pixels
    assert mean_loss(model, test) < 11.0
    x_hat = model.reconstruct(test[:5])
    assert x_hat.shape == (5, 1, 8, 8) and 0 <= x_hat.min() and x_hat.max() <= 1


def test_denoising_autoencoder_cleans_masked_inputs_better(binary_digits):
    train, val, test = binary_digits
    errors = {}
    for corruption in (0.0, 0.25):
        torch.manual_seed(0)
        model = Autoencoder((1, 8, 8), latent_dim=8, hidden=(128,), corruption=corruption)
        fit(model, train, val, epochs=60, lr=3e-3, patience=10)
        torch.manual_seed(1)
        masked = test * (torch.rand_like(test) >= 0.25)
        with torch.no_grad():
            errors[corruption] = -bernoulli_log_prob(model.decode(model.encode(masked)), test).mean().item()
    assert errors[0.25] < errors[0.0] - 3.0  # measured about 11.4 vs 17.4 nats


def test_conv_autoencoder_at_mnist_resolution_and_corruption_kinds():
    model = ConvAutoencoder((1, 28, 28), latent_dim=16)
    assert model.reconstruct(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    grey = Autoencoder((1, 8, 8), binary=False, corruption=0.1)
    x = torch.rand(4, 1, 8, 8)
    assert not torch.equal(grey.corrupt(x), x)
    assert torch.equal(grey.reconstruct(x), grey.reconstruct(x))  # reconstruct sees the clean input
    masked = Autoencoder((1, 8, 8), corruption=0.5).corrupt(torch.ones(1000, 1, 8, 8))
    assert set(masked.unique().tolist()) == {0.0, 1.0} and abs(masked.mean() - 0.5) < 0.02


def test_bad_inputs_and_undefined_density_raise_clear_errors():
    model = Autoencoder((1, 8, 8))
    with pytest.raises(ValueError, match=r"Autoencoder: expected input of shape \[N, 1, 8, 8\], got \[3, 64\]"):
        model.loss(torch.zeros(3, 64))
    with pytest.raises(ValueError, match=r"binary model needs inputs in \{0, 1\}"):
        model.loss(torch.full((3, 1, 8, 8), 0.5))
    with pytest.raises(NotImplementedError, match="no density"):
        model.log_prob(torch.zeros(3, 1, 8, 8))
    with pytest.raises(NotImplementedError, match="cannot sample"):
        model.sample(4)
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvAutoencoder((1, 10, 10))
    with pytest.raises(ValueError, match="corruption"):
        Autoencoder((1, 8, 8), corruption=1.0)
