"""Sample-quality metrics (generative.metrics): distances against closed forms and the expected ordering."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from generative import data
from generative.metrics import (
    accuracy,
    classifier_info,
    frechet_distance,
    kernel_distance,
    load_classifier,
    precision_recall,
    sample_quality,
)


def test_frechet_distance_equals_the_scipy_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu_a, mu_b, c_a, c_b = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(c_a + c_b - 2 * linalg.sqrtm(c_a @ c_b).real)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0.0, abs=1e-6)


def test_kernel_distance_is_unbiased_and_detects_a_shift():
    generator = torch.Generator().manual_seed(0)
    same = [kernel_distance(torch.randn(200, 8, generator=generator), torch.randn(200, 8, generator=generator))
            for _ in range(20)]  # fmt: skip
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-3
    shifted = kernel_distance(torch.randn(200, 8, generator=generator), torch.randn(200, 8, generator=generator) + 1)
    assert shifted > 10 * np.std(same)


def test_precision_and_recall_on_clear_cases():
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(300, 4, generator=generator)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    precision, recall = precision_recall(real, 0.2 * real)  # a collapsed model: realistic but not covering
    assert precision > 0.9 and recall < 0.5


def test_shipped_classifier_has_the_recordedaccuracy():
    info = classifier_info()
    model = load_classifier()
    _, _, (x_test, y_test) = data.digits(labels=True)
    assert accuracy(model, x_test, y_test) == pytest.approx(info["test_accuracy_grey"], abs=1e-6)
    assert info["test_accuracy_grey"] > 0.95 and info["test_accuracy_binary"] > 0.9


def test_real_images_score_far_better_than_bernoulli_samples_than_noise():
    train, _, test = data.digits(binarize=True)
    generator = torch.Generator().manual_seed(0)
    marginals = train.mean(0, keepdim=True).expand(len(test), -1, -1, -1)
    bernoulli = torch.bernoulli(marginals, generator=generator)  # independent pixels with the data's marginals
    noise = (torch.rand(test.shape, generator=generator) < 0.5).float()
    real_score, bernoulli_score, noise_score = (sample_quality(train, fake) for fake in (test, bernoulli, noise))
    assert real_score["fd"] * 3 < bernoulli_score["fd"] and bernoulli_score["fd"] * 2 < noise_score["fd"]
    assert real_score["kid"] * 3 < bernoulli_score["kid"] < noise_score["kid"]
    assert real_score["precision"] > bernoulli_score["precision"] > noise_score["precision"]


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"takes \[N, 1, 8, 8\] images"):
        load_classifier().features(torch.zeros(2, 1, 28, 28))
    bad = tmp_path / "bad.pt"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="bad.pt: not a digits-classifier"):
        load_classifier(bad)


MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "mnist_test"


def test_the_28x28_classifier_ships_with_its_accuracy_and_license():
    info = classifier_info(28)
    assert info["test_accuracy_grey"] >= 0.95 and info["test_accuracy_binary"] >= 0.95
    assert "CC BY-SA 3.0" in info["data"] and "--mnist-dir" in info["made_by"]
    classifier = load_classifier(image_size=28)
    assert classifier.features(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    with pytest.raises(ValueError, match=r"takes \[N, 1, 28, 28\] images"):
        classifier.features(torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="no shipped classifier for 16x16 images"):
        load_classifier(image_size=16)
    omniglot = data.omniglot28().test[:200]  # sample_quality picks the 28x28 classifier by the images' size
    scores = sample_quality(omniglot[:100], omniglot[100:])
    assert scores["fd"] == pytest.approx(frechet_distance(classifier.features(omniglot[:100]).detach(),
                                                          classifier.features(omniglot[100:]).detach()))  # fmt: skip


@pytest.mark.skipif(not MNIST_DIR.exists(), reason=f"the MNIST test files are not in {MNIST_DIR}")
def test_the_28x28_classifier_reproduces_its_recorded_accuracy():
    from generative.metrics import mnist_splits

    _, _, (x_test, y_test) = mnist_splits(MNIST_DIR, seed=classifier_info(28)["seed"])
    classifier = load_classifier(image_size=28)
    assert accuracy(classifier, x_test, y_test) == pytest.approx(classifier_info(28)["test_accuracy_grey"])
    with pytest.raises(ValueError, match="expected the MNIST test files"):
        mnist_splits(MNIST_DIR.parent)
