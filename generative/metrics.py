"""Sample quality without Inception weights: a small digits classifier provides the features.

For feature sets ``R`` (real, ``[n, d]``) and ``G`` (generated, ``[m, d]``):

* Fréchet distance (Heusel et al. 2017, "FID" with Inception features):
  ``FD = ||mu_R - mu_G||^2 + Tr(C_R + C_G - 2 (C_R^{1/2} C_G C_R^{1/2})^{1/2})``, the 2-Wasserstein distance
  between Gaussians fitted to the two sets. Biased for small sets, so compare numbers at equal sizes.
* Kernel distance (Bińkowski et al. 2018, "KID"): the unbiased estimate of the squared MMD with the cubic
  polynomial kernel ``k(x, y) = (x.y / d + 1)^3``; zero in expectation when both sets come from one distribution.
* Mode coverage on a mixture of Gaussians with known centres and standard deviation ``sigma`` (the GAN papers'
  2D benchmark): a sample is high quality when it lies within ``3 sigma`` of its nearest centre; a mode is
  covered when at least ``min_share`` of the samples are high-quality samples nearest to it.
* Precision and recall (Kynkäänniemi et al. 2019): the real manifold is the union of balls around each real
  feature reaching its k-th nearest real neighbour; precision = the fraction of generated features inside it
  (are samples realistic?), recall = the fraction of real features inside the generated manifold (is the data
  covered?).

The classifiers (:class:`DigitClassifier`, a small CNN) ship in ``generative/assets/`` with the command that
trained each and its test accuracy in its ``.json``: one for scikit-learn's 8x8 digits (``digits_classifier``,
``python -m generative.metrics``), one for 28x28 MNIST-format digits (``mnist28_classifier``, trained on 8,000 of
the MNIST test file's digits: ``python -m generative.metrics --mnist-dir DIR --epochs 20``; its weights are
derived from MNIST, CC BY-SA 3.0). Both are trained on grey and binarized digits alike, so their features suit
both kinds of models; ``sample_quality`` picks the one that fits the images' size.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DigitClassifier",
    "accuracy",
    "classifier_info",
    "frechet_distance",
    "kernel_distance",
    "load_classifier",
    "mnist_splits",
    "mode_coverage",
    "precision_recall",
    "sample_quality",
    "train_classifier",
]

CLASSIFIERS = {8: "digits_classifier", 28: "mnist28_classifier"}
"""Image side -> the shipped classifier's file stem (``.pt`` weights, ``.json`` info)."""
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _assets_dir() -> Path:
    return Path(__file__).parent / "assets"


class DigitClassifier(nn.Module):
    """Two 3x3 convolutions, max pooling down to ``[64, 4, 4]`` (8x8 digits) or ``[64, 7, 7]`` (28x28
    MNIST-format digits), and a 64-unit feature layer, on ``[N, 1, S, S]`` images in [0, 1]."""

    def __init__(self, features: int = 64, image_size: int = 8) -> None:
        super().__init__()
        if image_size not in CLASSIFIERS:
            raise ValueError(f"DigitClassifier: image_size must be one of {sorted(CLASSIFIERS)}, got {image_size}")
        self.image_size = image_size
        pools = [nn.MaxPool2d(2)] * (1 if image_size == 8 else 2)
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), *pools
        )
        side = image_size // 2 ** len(pools)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, features), nn.ReLU())
        self.head = nn.Linear(features, 10)

    def features(self, x: Tensor) -> Tensor:
        """``[N, 64]`` penultimate activations: the space the distances are measured in."""
        s = self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise ValueError(f"the {s}x{s} digits classifier takes [N, 1, {s}, {s}] images, got {list(x.shape)}")
        return self.embed(self.conv(x.float()))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _binarize_half(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image thresholded at 8/16 with probability 1/2: the classifier sees grey and binary digits."""
    binary = (x >= 0.5).float()
    pick = torch.rand(len(x), 1, 1, 1, generator=generator) < 0.5
    return torch.where(pick, binary, x)


def mnist_splits(mnist_dir: str | Path, seed: int = 0) -> tuple[tuple[Tensor, Tensor], ...]:
    """The MNIST test file's 10,000 digits split 8,000 / 1,000 / 1,000 (train / val / test, seeded), as
    ``(x [N, 1, 28, 28] in [0, 1], y)`` pairs."""
    from generative import data

    images, labels = (Path(mnist_dir) / name for name in MNIST_FILES)
    if not images.is_file() or not labels.is_file():
        raise ValueError(f"{mnist_dir}: expected the MNIST test files {', '.join(MNIST_FILES)}")
    x, y = data.idx_images(images), torch.as_tensor(data.read_idx(labels), dtype=torch.long)
    if len(x) != len(y) or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{mnist_dir}: {len(x)} images of {list(x.shape[1:])} and {len(y)} labels")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    parts = order[:8000], order[8000:9000], order[9000:]
    return tuple((x[i], y[i]) for i in parts)


def train_classifier(seed: int = 0, epochs: int = 60, batch_size: int = 64,
                     mnist_dir: str | Path | None = None) -> tuple[DigitClassifier, dict]:  # fmt: skip
    """Train on the digits train split (or, with ``mnist_dir``, on 8,000 of the MNIST test file's 28x28 digits),
    grey and binarized, keep the weights best on validation; returns the model and a dict with its accuracy on
    the grey and on the binarized test split."""
    from generative import data

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if mnist_dir is None:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = data.digits(labels=True, seed=seed)
    else:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = mnist_splits(mnist_dir, seed)
    model = DigitClassifier(image_size=x_train.shape[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, best_accuracy = None, -1.0
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for batch in order.split(batch_size):
            loss = F.cross_entropy(model(_binarize_half(x_train[batch], generator)), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_accuracy = 0.5 * (accuracy(model, x_val, y_val) + accuracy(model, (x_val >= 0.5).float(), y_val))
        if val_accuracy > best_accuracy:
            best, best_accuracy = {k: v.clone() for k, v in model.state_dict().items()}, val_accuracy
    model.load_state_dict(best)
    info = {
        "test_accuracy_grey": accuracy(model, x_test, y_test),
        "test_accuracy_binary": accuracy(model, (x_test >= 0.5).float(), y_test),
        "val_accuracy": best_accuracy,
        "seed": seed,
        "epochs": epochs,
        "train_seconds": round(time.perf_counter() - start, 1),
        "made_by": "python -m generative.metrics" + ("" if mnist_dir is None else " --mnist-dir DIR --epochs "
                                                      f"{epochs}"),  # fmt: skip
    }
    if mnist_dir is not None:
        info["data"] = ("MNIST test set (t10k), 8,000 / 1,000 / 1,000 seeded split; (c) Yann LeCun and Corinna "
                        "Cortes, CC BY-SA 3.0: these weights are derived from it and shared under the same license")
    return model.eval(), info


@torch.no_grad()
def accuracy(model: DigitClassifier, x: Tensor, y: Tensor) -> float:
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())


def classifier_info(image_size: int = 8) -> dict:
    """What the shipped classifier's ``.json`` records (test accuracies, seed, command, data and license)."""
    return json.loads((_assets_dir() / f"{_stem(image_size)}.json").read_text())


def _stem(image_size: int) -> str:
    if image_size not in CLASSIFIERS:
        raise ValueError(f"no shipped classifier for {image_size}x{image_size} images (only {sorted(CLASSIFIERS)})")
    return CLASSIFIERS[image_size]


def load_classifier(path: str | Path | None = None, image_size: int = 8) -> DigitClassifier:
    """The shipped classifier for ``image_size`` (8 or 28), or one saved at ``path``, loaded with
    ``weights_only=True``."""
    path = Path(path) if path is not None else _assets_dir() / f"{_stem(image_size)}.pt"
    model = DigitClassifier(image_size=image_size)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, OSError) as err:
        size = f"{image_size}x{image_size}"
        raise ValueError(f"{path}: not a digits-classifier state dict for {size} images ({err})") from err
    return model.eval()


# --------------------------------------------------------------------------------------------- distances


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix through its eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FD between Gaussians fitted to two feature sets ``[n, d]`` (float64 throughout)."""
    real, fake = real.double(), fake.double()
    mu_r, mu_g = real.mean(0), fake.mean(0)
    c_r, c_g = torch.cov(real.T), torch.cov(fake.T)
    root_r = _sqrtm_psd(c_r)
    # Tr((C_R^1/2 C_G C_R^1/2)^1/2) = Tr((C_R C_G)^1/2): the symmetric form keeps eigh applicable.
    cross = _sqrtm_psd(root_r @ c_g @ root_r)
    return float((mu_r - mu_g).square().sum() + torch.trace(c_r + c_g - 2 * cross))


def kernel_distance(real: Tensor, fake: Tensor) -> float:
    """Unbiased squared MMD with ``k(x, y) = (x.y / d + 1)^3`` between feature sets ``[n, d]`` and ``[m, d]``."""
    real, fake = real.double(), fake.double()
    d = real.shape[1]
    k_rr, k_gg, k_rg = ((a @ b.T / d + 1) ** 3 for a, b in ((real, real), (fake, fake), (real, fake)))
    n, m = len(real), len(fake)
    within_r = (k_rr.sum() - k_rr.diagonal().sum()) / (n * (n - 1))
    within_g = (k_gg.sum() - k_gg.diagonal().sum()) / (m * (m - 1))
    return float(within_r + within_g - 2 * k_rg.mean())


def _inside_manifold(reference: Tensor, queries: Tensor, k: int) -> Tensor:
    """Which ``queries`` lie within the k-NN radius of some ``reference`` point: ``[m]`` bool."""
    distances = torch.cdist(reference, reference)
    radii = distances.kthvalue(k + 1, dim=1).values  # +1: each point is its own nearest neighbour
    return (torch.cdist(queries, reference) <= radii[None, :]).any(dim=1)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al.'s improved precision and recall with ``k`` nearest neighbours."""
    real, fake = real.double(), fake.double()
    precision = _inside_manifold(real, fake, k).double().mean()
    recall = _inside_manifold(fake, real, k).double().mean()
    return float(precision), float(recall)


def mode_coverage(samples: Tensor, centres: Tensor, sigma: float, min_share: float = 0.01) -> tuple[int, float]:
    """``(modes covered, high-quality fraction)`` of points ``[n, d]`` around ``centres`` ``[k, d]``."""
    distances = torch.cdist(samples.double(), centres.double())
    nearest, mode = distances.min(dim=1)
    good = nearest <= 3 * sigma
    counts = torch.bincount(mode[good], minlength=len(centres))
    return int((counts >= min_share * len(samples)).sum()), float(good.double().mean())


@torch.no_grad()
def sample_quality(real: Tensor, fake: Tensor, classifier: DigitClassifier | None = None) -> dict[str, float]:
    """FD, KID, precision and recall of image sets ``[N, 1, 8, 8]`` or ``[N, 1, 28, 28]`` in the feature space of
    the shipped classifier of that size (or ``classifier``)."""
    classifier = load_classifier(image_size=real.shape[-1]) if classifier is None else classifier
    f_real, f_fake = classifier.features(real), classifier.features(fake)
    precision, recall = precision_recall(f_real, f_fake)
    return {
        "fd": frechet_distance(f_real, f_fake),
        "kid": kernel_distance(f_real, f_fake),
        "precision": precision,
        "recall": recall,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m generative.metrics",
        description="Train a digits classifier whose features the sample-quality metrics use, and save it: the 8x8 "
        "one on scikit-learn's digits, or with --mnist-dir the 28x28 one on the MNIST test file.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--mnist-dir", default=None, help=f"a folder with {' and '.join(MNIST_FILES)} (e.g. "
                        "../shared/data/images/mnist_test): train the 28x28 classifier")  # fmt: skip
    parser.add_argument("--out", default=str(_assets_dir()), help="folder for the weights and their info (default: "
                        "the package's data folder)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, info = train_classifier(args.seed, args.epochs, mnist_dir=args.mnist_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(model.image_size)
    torch.save(model.state_dict(), out / f"{stem}.pt")
    (out / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
