"""generative.data: digits and Omniglot splits, binarization, IDX files, 2D toy densities, the dispatcher."""

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from generative import data

MNIST_TEST = Path("/work/shared/data/images/mnist_test/t10k-images-idx3-ubyte.gz")
MNIST_LABELS = Path("/work/shared/data/images/mnist_test/t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def digits_grey():
    return data.digits(labels=True)


# --------------------------------------------------------------------------------------------------- digits


def test_digits_shapes_and_ranges(digits_grey):
    sizes = [len(x) for x, _ in digits_grey]
    assert sizes == [1221, 216, 360] and sum(sizes) == 1797
    for x, y in digits_grey:
        assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1
        assert torch.allclose(x * 16, (x * 16).round())  # the 17 grey levels k/16
    for split in data.digits(binarize=True):
        assert set(split.unique().tolist()) == {0.0, 1.0}


def test_binarization_is_exact_at_the_threshold(digits_grey):
    binary = data.digits(binarize=True, labels=True)
    for (grey, _), (bits, _) in zip(digits_grey, binary, strict=True):
        assert torch.equal(bits, (grey * 16 >= 8).float())
        assert torch.all(bits[grey == 8 / 16] == 1) and torch.all(bits[grey == 7 / 16] == 0)
        assert (grey == 8 / 16).any()  # the threshold level does occur, so the check above bites


def test_stochastic_binarization_follows_grey_levels_and_seed(digits_grey):
    a = data.digits(binarize="stochastic", seed=3).train
    assert torch.equal(a, data.digits(binarize="stochastic", seed=3).train)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    # same images as the grey split with seed 3; ink frequency ~ grey value
    grey = data.digits(seed=3).train
    assert abs(a.mean() - grey.mean()) < 0.01
    assert a[grey == 0].sum() == 0 and a[grey == 1].min() == 1
    with pytest.raises(ValueError, match="binarize"):
        data.digits(binarize="yes")


def test_digit_splits_are_disjoint_stratified_and_reproducible(digits_grey):
    from sklearn.datasets import load_digits

    targets = load_digits().target
    train, val, test = data._three_way(targets, seed=0)
    assert len(np.unique(np.concatenate([train, val, test]))) == len(targets) == 1797  # disjoint, complete
    counts = np.bincount(targets)
    for index, fraction in ((test, 0.2), (val, 0.8 * 0.15)):
        assert np.all(np.abs(np.bincount(targets[index], minlength=10) - fraction * counts) <= 1)  # stratified
    for (_, y), index in zip(digits_grey, (train, val, test), strict=True):  # the tensors hold those images
        assert np.array_equal(y.numpy(), targets[index])
    # same seed, same split; another seed keeps the test split and draws another validation set
    again = data.digits(labels=True)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, digits_grey, strict=True))
    train1, val1, test1 = data._three_way(targets, seed=1)
    assert np.array_equal(test1, test) and not np.array_equal(val1, val)
    assert torch.equal(data.digits(seed=1).test, digits_grey.test[0])


def test_independent_bernoulli_baseline_on_the_fixed_split():
    """Each pixel's ink frequency on train, scored on test: ~25.2 nats, the reference figure of the split."""
    train, _, test = data.digits(binarize=True)
    p = train.mean(0).clamp(1e-3, 1 - 1e-3)
    nats = -(test * p.log() + (1 - test) * (1 - p).log()).flatten(1).sum(1).mean()
    assert nats == pytest.approx(25.2, abs=0.1)


# ------------------------------------------------------------------------------------------------- omniglot


def test_omniglot28_loads_with_a_split_by_image_stratified_by_character():
    splits = data.omniglot28(labels=True)
    assert [len(x) for x, _ in splits] == [3388, 484, 968]
    for (x, y), per_char in zip(splits, (14, 2, 4), strict=True):
        assert x.shape[1:] == (1, 28, 28) and set(x.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(torch.bincount(y, minlength=242), torch.full((242,), per_char))
    assert 0.05 < splits.train[0].mean() < 0.11  # ~8 % ink
    assert torch.equal(data.omniglot28(seed=5).test, splits.test[0])  # the test split is fixed


# ------------------------------------------------------------------------------------------------ IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    path = tmp_path / f"images-idx3-ubyte{suffix}"
    data.write_idx(path, images)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = data.read_idx(path)
    assert back.dtype == np.uint8 and np.array_equal(back, images)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    data.write_idx(tmp_path / "f.idx", floats)
    assert np.array_equal(data.read_idx(tmp_path / "f.idx"), floats)
    x = data.idx_images(path)
    assert x.shape == (5, 1, 4, 3) and torch.allclose(x * 255, torch.as_tensor(images, dtype=torch.float32)[:, None])
    assert torch.equal(data.idx_images(path, binarize=True), (x * 255 >= 128).float())


def _header(code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">i4").tobytes()


@pytest.mark.parametrize("content, message", [
    (b"\x01\x00\x08\x01" + b"\x00" * 8, "magic"),
    (b"", "empty"),
    (_header(0x07, [2]) + b"\x00\x00", "dtype code 0x07"),
    (_header(0x08, [2, 3]) + b"\x00" * 5, r"17 bytes but the header's shape \[2, 3\] of uint8 needs 18"),
    (_header(0x08, [2, 3]) + b"\x00" * 7, "19 bytes .* needs 18"),
    (_header(0x08, [2, 3])[:8], "truncated header"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
], ids=["magic", "empty", "dtype", "short", "long", "header", "gzip"])  # fmt: skip
def test_corrupt_idx_files_raise_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_gzip_idx_raises(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(_header(0x08, [4]) + b"\x01\x02\x03\x04")[:-6])
    with pytest.raises(ValueError, match="cut.gz"):
        data.read_idx(path)


def test_idx_images_rejects_non_image_files(tmp_path):
    data.write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels.*expected uint8 images"):
        data.idx_images(tmp_path / "labels")


@pytest.mark.skipif(not MNIST_TEST.exists(), reason="the real MNIST test file is not on this machine")
def test_real_mnist_test_file():
    images = data.read_idx(MNIST_TEST)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    labels = data.read_idx(MNIST_LABELS)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    splits = data.load(f"idx:{MNIST_TEST}")
    assert [len(s) for s in splits] == [6800, 1200, 2000] and splits.test.shape[1:] == (1, 28, 28)
    assert 0.1 < splits.train.mean() < 0.15  # MNIST's mean grey value is ~0.13


# ------------------------------------------------------------------------------------------ 2D toy densities


def _grid(half_width: float = 5.0, n: int = 400) -> tuple[torch.Tensor, float]:
    """Cell midpoints of an n x n grid on [-half_width, half_width]^2 and the cell area."""
    step = 2 * half_width / n
    centres = -half_width + step * (torch.arange(n) + 0.5)
    xx, yy = torch.meshgrid(centres, centres, indexing="xy")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1), step * step


def _coarse_cell(points: torch.Tensor) -> torch.Tensor:
    """Index 0..99 of the 1x1 cell of [-5, 5]^2 holding each point (the border cells take what lies beyond)."""
    col_row = (points + 5).floor().clamp(0, 9).long()
    return col_row[:, 0] + 10 * col_row[:, 1]


@pytest.mark.parametrize("name", ["eight_gaussians", "checkerboard", "rings", "grid"])
def test_toy_log_density_integrates_to_one_and_matches_samples(name):
    points, area = _grid()
    density = data.log_density(name, points).exp()
    assert density.sum() * area == pytest.approx(1.0, abs=0.01)
    # a histogram of samples on 10x10 coarse cells agrees with the density integrated over each cell
    x = data.sample(name, 40_000, seed=1)
    assert x.shape == (40_000, 2) and x.dtype == torch.float32
    assert torch.isfinite(data.log_density(name, x)).all()  # every sample lies on the support
    expected = torch.zeros(100).index_add_(0, _coarse_cell(points), density * area)
    observed = torch.bincount(_coarse_cell(x), minlength=100) / len(x)
    assert (observed - expected).abs().max() < 0.01


def test_toy_densities_are_seeded_and_errors_are_clear():
    assert torch.equal(data.sample("rings", 10, seed=2), data.sample("rings", 10, seed=2))
    assert not torch.equal(data.sample("rings", 10, seed=2), data.sample("rings", 10, seed=3))
    for name in ("two_moons", "swiss_roll"):
        x = data.sample(name, 500, seed=0)
        assert x.shape == (500, 2) and x.abs().max() < 3 and torch.equal(x, data.sample(name, 500, seed=0))
        with pytest.raises(NotImplementedError, match=f"{name}.*sample-only"):
            data.log_density(name, x)
    with pytest.raises(ValueError, match="unknown toy density 'moons'.*two_moons"):
        data.sample("moons", 10)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        data.log_density("rings", torch.zeros(3, 3))
    assert data.log_density("checkerboard", torch.tensor([[0.5, 0.5], [0.5, -0.5]])).tolist() == [
        pytest.approx(-math.log(8)), -math.inf]


# ------------------------------------------------------------------------------------------------ load(name)


def test_load_by_name():
    train, val, test = data.load("digits-binary")
    assert torch.equal(test, data.digits(binarize=True).test)
    assert torch.equal(data.load("digits").train, data.digits().train)
    toy = data.load("toy:eight_gaussians", seed=1)
    assert [len(s) for s in toy] == [10_000, 2_000, 2_000]
    with pytest.raises(ValueError, match="unknown data set 'mnist'.*digits-binary.*omniglot28.*toy:NAME.*idx:PATH"):
        data.load("mnist")
    with pytest.raises(ValueError, match="unknown toy density"):
        data.load("toy:spiral")


def test_load_binarizes_every_image_source(tmp_path):
    """binarize= gives the same pixels as the sources' own binarizations, for the digits, IDX files and Omniglot
    (binary already: unchanged); labels come along; points and contradictions are refused."""
    assert torch.equal(data.load("digits", binarize=True).train, data.load("digits-binary").train)
    assert torch.equal(data.load("digits", binarize="stochastic", seed=2).val,
                       data.digits(binarize="stochastic", seed=2).val)  # fmt: skip
    assert torch.equal(data.load("omniglot28", binarize="stochastic").test, data.omniglot28().test)
    (x, y), _, _ = data.load("digits", binarize=True, labels=True)
    assert torch.equal(x, data.digits(binarize=True).train) and y.dtype == torch.int64
    grey = (torch.arange(40 * 4 * 4) % 256).reshape(40, 4, 4).numpy().astype(np.uint8)
    path = tmp_path / "g-idx3-ubyte"
    data.write_idx(path, grey)
    thresholded = data.load(f"idx:{path}", binarize=True, seed=3)
    for part, as_grey in zip(thresholded, data.load(f"idx:{path}", seed=3), strict=True):
        assert torch.equal(part, (as_grey * 255 >= 128).float())
    stochastic = data.load(f"idx:{path}", binarize="stochastic", seed=3)
    assert set(torch.cat(list(stochastic)).unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="binarize applies to images"):
        data.load("toy:rings", binarize=True)
    with pytest.raises(ValueError, match="thresholded already"):
        data.load("digits-binary", binarize="stochastic")
    with pytest.raises(ValueError, match="binarize must be"):
        data.load("digits", binarize="yes")
    with pytest.raises(ValueError, match="has no labels"):
        data.load(f"idx:{path}", labels=True)
