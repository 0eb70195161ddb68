"""Data for the generative models: small real images that need no download, 2D toy densities, and IDX files.

    from generative import data
    train, val, test = data.digits(binarize=True)            # [N, 1, 8, 8] in {0, 1}
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data.digits(labels=True)
    train, val, test = data.omniglot28()                      # [N, 1, 28, 28] in {0, 1}
    x = data.sample("eight_gaussians", 1000, seed=0)          # [1000, 2]
    log_p = data.log_density("eight_gaussians", x)            # [1000], exact, nats
    images = data.idx_images("t10k-images-idx3-ubyte.gz", binarize=True)
    train, val, test = data.load("digits-binary")             # by name: digits, digits-binary, omniglot28,
                                                              # toy:NAME, idx:PATH
    train, val, test = data.load("idx:images.gz", binarize=True)    # any image set, thresholded

Splits. A model is compared on a test set that never changes, so every test split here is fixed (it
ignores ``seed``); ``seed`` only picks which training images are held out for validation (early stopping)
and, for ``binarize="stochastic"``, the binarization noise.

- digits: scikit-learn's 1,797 handwritten digits, 8x8 with 17 grey levels 0..16, scaled to [0, 1]. Test =
  sklearn's ``train_test_split(test_size=0.2, stratify=labels, random_state=0)``, 360 images; validation
  = 15 % of the remaining 1,437, stratified by label, 216 images; train = 1,221 images.
  ``binarize=True``: pixel >= 8/16 -> 1 (a fixed threshold, so the binary data set is the same for all);
  ``binarize="stochastic"``: each pixel is 1 with probability equal to its grey value, drawn once with
  ``seed``. ``stochastic_binarize`` redraws per batch, if you prefer dynamic binarization.
- omniglot28: 4,840 binary drawings (242 characters of 8 alphabets, 20 drawings each; see
  ``generative/assets/SOURCES.txt``). Split by image, stratified by character: 4 drawings of every
  character are test (968 images, fixed), 2 are validation (484), 14 are train (3,388). Every character
  is seen in training, so the test measures how well a model generalises to new drawings of known
  characters (the setting of the density-modelling literature, not one-shot learning).
- idx:PATH: the file's images in a seeded split by image with the same fractions as digits (the file has
  no labels to stratify by).
- toy:NAME: 10,000 / 2,000 / 2,000 fresh samples.
"""

from __future__ import annotations

import gzip
import math
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["DATASETS", "TOY_DENSITIES", "Splits", "digits", "idx_images", "load", "log_density", "mixture_modes",
           "omniglot28", "read_idx", "sample", "stochastic_binarize", "write_idx"]  # fmt: skip

DATASETS = ("digits", "digits-binary", "omniglot28", "toy:NAME", "idx:PATH")
TEST_FRACTION = 0.2  # of all images
VAL_FRACTION = 0.15  # of the images left after the test split
TEST_SEED = 0  # the test split never changes
DIGITS_LEVELS = 16  # sklearn digits pixels are integers 0..16
Binarize = Literal[False, True, "stochastic"]


class Splits(NamedTuple):
    """``train, val, test``: tensors, or ``(x, y)`` pairs with ``labels=True``."""

    train: Tensor | tuple[Tensor, Tensor]
    val: Tensor | tuple[Tensor, Tensor]
    test: Tensor | tuple[Tensor, Tensor]


# --------------------------------------------------------------------------------------------------- splits


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` with ``fraction`` of every class held out (sklearn's rounding)."""
    from sklearn.model_selection import train_test_split  # sklearn is slow to import; only load data needs it

    index = np.arange(len(labels))
    keep, held_out = train_test_split(index, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(keep), np.sort(held_out)


def _three_way(labels: np.ndarray, seed: int, test_fraction: float = TEST_FRACTION,
               val_fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/val/test indices: a fixed stratified test split, then a ``seed``-ed stratified val split."""
    rest, test = _stratified_split(labels, test_fraction, TEST_SEED)
    train, val = _stratified_split(labels[rest], val_fraction, seed)
    return rest[train], rest[val], test


def _check_binarize(binarize: object) -> None:
    if binarize not in (False, True, "stochastic"):
        raise ValueError(f"binarize must be False, True or 'stochastic', got {binarize!r}")


def stochastic_binarize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each pixel becomes 1 with probability equal to its grey value in [0, 1] (Salakhutdinov & Murray 2008)."""
    return torch.bernoulli(x, generator=generator)


def _binarized(x: Tensor, binarize: Binarize, threshold: float, seed: int) -> Tensor:
    """``x`` in [0, 1] as given, thresholded (``x >= threshold``) or stochastically binarized with ``seed``."""
    _check_binarize(binarize)
    if binarize == "stochastic":
        return stochastic_binarize(x, torch.Generator().manual_seed(seed))
    if binarize:
        return (x >= threshold).float()
    return x


def _splits(x: Tensor, y: Tensor, parts: tuple[np.ndarray, ...], labels: bool) -> Splits:
    if labels:
        return Splits(*[(x[torch.as_tensor(i)], y[torch.as_tensor(i)]) for i in parts])
    return Splits(*[x[torch.as_tensor(i)] for i in parts])


# ----------------------------------------------------------------------------------------------- real images


def digits(binarize: Binarize = False, seed: int = 0, labels: bool = False) -> Splits:
    """scikit-learn's handwritten digits as ``Splits`` of float tensors ``[N, 1, 8, 8]`` in [0, 1].

    Args:
        binarize: ``False`` grey levels ``k/16``; ``True`` pixel >= 8/16 -> 1 else 0; ``"stochastic"``
            pixel ~ Bernoulli(grey value), drawn once with ``seed``.
        seed: picks the validation images (and the stochastic binarization); the test split is fixed.
        labels: return ``(x, y)`` pairs with ``y`` int64 ``[N]`` in 0..9.
    """
    from sklearn.datasets import load_digits

    images, targets = load_digits(return_X_y=True)
    x = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / DIGITS_LEVELS
    x = _binarized(x, binarize, threshold=8 / DIGITS_LEVELS, seed=seed)
    return _splits(x, torch.as_tensor(targets, dtype=torch.int64), _three_way(targets, seed), labels)


def omniglot28(seed: int = 0, labels: bool = False) -> Splits:
    """The shipped 28x28 binary Omniglot drawings as ``Splits`` of ``[N, 1, 28, 28]`` tensors in {0, 1}.

    Split by image, stratified by character (see the module docstring); ``labels=True`` gives the character
    index 0..241 as ``y``.
    """
    with resources.files("generative").joinpath("assets/omniglot_small_28x28_binary.npz").open("rb") as f:
        archive = np.load(f)
        height, width = (int(d) for d in archive["shape"])
        bits = np.unpackbits(archive["images_packbits"], axis=1)[:, : height * width]
        character = archive["character"].astype(np.int64)
    x = torch.as_tensor(bits, dtype=torch.float32).reshape(-1, 1, height, width)
    # 20 drawings per character: 4 test (0.2), then 2 of the remaining 16 validation (0.125)
    parts = _three_way(character, seed, test_fraction=0.2, val_fraction=0.125)
    return _splits(x, torch.as_tensor(character), parts, labels)


# ------------------------------------------------------------------------------------------------- IDX files

# The IDX format (LeCun's MNIST files): 0x00 0x00, a dtype code, the number of dimensions, then one
# big-endian int32 per dimension and the values, big-endian, in C order.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic (whatever its name says)."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: corrupt gzip stream ({error})") from error


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format, gzipped or not) as a numpy array of its dtype and shape.

    Raises:
        ValueError: naming the file, for a bad magic number, an unknown dtype code, or a length that does
            not match the header's dimensions.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (the magic number must start with two zero bytes, got "
                         f"{raw[:4].hex() or 'an empty file'})")  # fmt: skip
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes but the header's shape {list(shape)} of {dtype.name} "
                         f"needs {expected}")  # fmt: skip
    # native byte order, so torch.as_tensor accepts the array
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz`` (the inverse of ``read_idx``)."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    array = np.asarray(array)
    if array.dtype not in codes:
        raise ValueError(f"{path}: IDX cannot store dtype {array.dtype}; use one of {sorted(map(str, codes))}")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(body) if path.suffix == ".gz" else body)


def idx_images(path: str | Path, binarize: Binarize = False, seed: int = 0) -> Tensor:
    """MNIST-like IDX images ``[N, H, W]`` of uint8 as float ``[N, 1, H, W]`` in [0, 1] (value / 255).

    ``binarize=True`` thresholds at 128 of 256 grey levels (value >= 128 -> 1), the same half-way rule as
    the digits; ``"stochastic"`` draws pixel ~ Bernoulli(value / 255) with ``seed``.
    """
    array = read_idx(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 images [N, H, W], got {array.dtype} {list(array.shape)}")
    x = torch.as_tensor(array, dtype=torch.float32).unsqueeze(1) / 255
    return _binarized(x, binarize, threshold=128 / 255, seed=seed)


def _split_by_image(x: Tensor, seed: int) -> Splits:
    """A fixed test split and a ``seed``-ed validation split, by image, with the digits' fractions."""
    test = torch.randperm(len(x), generator=torch.Generator().manual_seed(TEST_SEED))
    n_test = round(TEST_FRACTION * len(x))
    rest, test = test[n_test:], test[:n_test]
    rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed))]
    n_val = round(VAL_FRACTION * len(rest))
    return Splits(x[rest[n_val:]], x[rest[:n_val]], x[test])


# ------------------------------------------------------------------------------------------- 2D toy densities
#
# Each has an exact density where one exists, so a flow's or a VAE's estimate can be compared with the truth:
#   eight_gaussians  p(x) = 1/8 sum_k N(x; 2 (cos 2 pi k/8, sin 2 pi k/8), 0.2^2 I)
#   grid             p(x) = 1/25 sum_k N(x; c_k, 0.05^2 I), c_k on the 5x5 grid {-2, -1, 0, 1, 2}^2 (the GAN
#                    papers' mode-collapse benchmark: sharp, well separated modes)
#   checkerboard     uniform on the 8 dark 1x1 squares of a 4x4 board on [-2, 2]^2: p = 1/8 there, else 0
#   rings            radius r = |r_k + 0.1 e| with r_k in (1, 2, 3) weighted by r_k, e ~ N(0, 1), angle
#                    uniform: p(x) = p_r(|x|) / (2 pi |x|), p_r(r) = sum_k w_k [N(r; r_k, s) + N(-r; r_k, s)]
#   two_moons, swiss_roll: samples only (scikit-learn's generators; their noise has no closed-form density)

_RADIUS, _SPREAD = 2.0, 0.2  # eight Gaussians
_GRID_SPREAD = 0.05  # 25 Gaussians on a grid
_BOARD = 4  # checkerboard squares per side, each 1x1, centred on the origin
_RING_RADII, _RING_WIDTH = (1.0, 2.0, 3.0), 0.1
TOY_DENSITIES = ("eight_gaussians", "checkerboard", "rings", "grid", "two_moons", "swiss_roll")
_SAMPLE_ONLY = ("two_moons", "swiss_roll")


def _check_toy(name: str) -> None:
    if name not in TOY_DENSITIES:
        raise ValueError(f"unknown toy density {name!r}; choose one of {', '.join(TOY_DENSITIES)}")


def _eight_centres() -> Tensor:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return _RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def mixture_modes(name: str) -> tuple[Tensor, float] | None:
    """``(centres [k, 2], sigma)`` of a toy density that is a mixture of isotropic Gaussians with equal weights
    (``eight_gaussians``, ``grid``), ``None`` for the others: what mode coverage is measured against."""
    _check_toy(name)
    if name == "eight_gaussians":
        return _eight_centres(), _SPREAD
    if name == "grid":
        axis = torch.arange(-2, 3, dtype=torch.float64)
        return torch.cartesian_prod(axis, axis), _GRID_SPREAD
    return None


def _ring_weights() -> Tensor:
    radii = torch.tensor(_RING_RADII, dtype=torch.float64)
    return radii / radii.sum()  # longer rings get more points, so the ink per unit length is even


def _log_normal(v: Tensor, mean: Tensor, std: float) -> Tensor:
    return -((v - mean) ** 2) / (2 * std**2) - 0.5 * math.log(2 * math.pi * std**2)


def sample(name: str, n: int, seed: int = 0) -> Tensor:
    """``n`` samples ``[n, 2]`` (float32) of the toy density ``name`` (one of ``TOY_DENSITIES``)."""
    _check_toy(name)
    g = torch.Generator().manual_seed(seed)
    if name in ("eight_gaussians", "grid"):
        centres, sigma = mixture_modes(name)
        k = torch.randint(len(centres), (n,), generator=g)
        x = centres[k] + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
    elif name == "checkerboard":
        # a uniform point in a random cell of the board, with the column shifted onto a dark square
        row = torch.randint(_BOARD, (n,), generator=g)
        col = 2 * torch.randint(_BOARD // 2, (n,), generator=g) + row % 2
        cell = torch.stack([col, row], dim=1).double() + torch.rand(n, 2, generator=g, dtype=torch.float64)
        x = cell - _BOARD / 2
    elif name == "rings":
        k = torch.multinomial(_ring_weights(), n, replacement=True, generator=g)
        radius = torch.tensor(_RING_RADII, dtype=torch.float64)[k]
        radius = (radius + _RING_WIDTH * torch.randn(n, generator=g, dtype=torch.float64)).abs()
        angle = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        x = radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    else:
        from sklearn.datasets import make_moons, make_swiss_roll

        random_state = int(torch.randint(2**31 - 1, (1,), generator=g))
        if name == "two_moons":
            points, _ = make_moons(n, noise=0.05, random_state=random_state)
        else:
            points3d, _ = make_swiss_roll(n, noise=0.5, random_state=random_state)
            points = points3d[:, [0, 2]] / 5  # the roll lies in the x-z plane; /5 brings it to about [-2, 2]
        x = torch.as_tensor(points)
    return x.float()


def log_density(name: str, x: Tensor | np.ndarray) -> Tensor:
    """Exact ``log p(x)`` ``[N]`` in nats of the toy density ``name`` at points ``x [N, 2]`` (-inf off support).

    Raises:
        NotImplementedError: for ``two_moons`` and ``swiss_roll``, which are defined by samples only.
    """
    _check_toy(name)
    if name in _SAMPLE_ONLY:
        exact = ", ".join(n for n in TOY_DENSITIES if n not in _SAMPLE_ONLY)
        raise NotImplementedError(f"toy density {name!r} is sample-only (no closed-form density); exact "
                                  f"log-densities exist for {exact}")  # fmt: skip
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"log_density: expected points of shape [N, 2], got {list(x.shape)}")
    if name in ("eight_gaussians", "grid"):
        centres, sigma = mixture_modes(name)
        sq = ((x[:, None, :] - centres[None]) ** 2).sum(-1)  # [N, k]
        log_normal = -sq / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
        out = torch.logsumexp(log_normal, dim=1) - math.log(len(centres))
    elif name == "checkerboard":
        cell = torch.floor(x + _BOARD / 2)
        inside = (x.abs() < _BOARD / 2).all(dim=1)
        dark = inside & ((cell[:, 0] - cell[:, 1]) % 2 == 0)  # same parity of column and row, as sampled
        area = _BOARD * _BOARD / 2
        out = torch.where(dark, torch.tensor(-math.log(area), dtype=x.dtype), torch.tensor(-math.inf, dtype=x.dtype))
    else:
        r = x.norm(dim=1)[:, None]
        radii, log_w = torch.tensor(_RING_RADII, dtype=x.dtype), _ring_weights().log()
        # |r_k + s e| folds the Gaussian at 0, so the radius density has a mirrored term
        terms = torch.cat([log_w + _log_normal(r, radii, _RING_WIDTH), log_w + _log_normal(-r, radii, _RING_WIDTH)], 1)
        out = torch.logsumexp(terms, dim=1) - torch.log(2 * math.pi * r[:, 0])  # polar change of variables
    return out.float()


# ------------------------------------------------------------------------------------------------ by name


def load(name: str, seed: int = 0, binarize: Binarize | None = None, labels: bool = False) -> Splits:
    """``Splits`` of a data set by name: ``"digits"``, ``"digits-binary"``, ``"omniglot28"``, ``"toy:NAME"``
    (a 2D density of ``TOY_DENSITIES``), ``"idx:PATH"`` (an MNIST-like IDX image file, grey levels in [0, 1]).

    Args:
        binarize: for the image sets: ``None`` as the set comes (``digits`` and ``idx:`` grey, the others
            binary); ``True`` the half-way threshold, ``"stochastic"`` pixel ~ Bernoulli(grey value) drawn once
            with ``seed``, as in :func:`digits` and :func:`idx_images` (a no-op on the binary ``omniglot28``;
            ``digits-binary`` is ``digits`` thresholded, so only ``None`` and ``True`` fit it); ``False`` keeps
            grey levels (``digits``, ``idx:``).
        labels: ``(x, y)`` pairs (digits' classes, omniglot28's characters).

    Raises:
        ValueError: for an unknown name, listing the choices, and for a ``binarize`` or ``labels`` that the set
            does not have.
    """
    if binarize is not None:
        _check_binarize(binarize)
        if name.startswith("toy:"):
            raise ValueError(f"binarize applies to images, not to the 2D points of {name!r}")
        if name == "digits-binary" and binarize is not True:
            raise ValueError(f"digits-binary is thresholded already; binarize={binarize!r} needs 'digits'")
        if name == "omniglot28" and binarize is False:
            raise ValueError("omniglot28 is binary: it has no grey levels to keep")
    if labels and not (name.startswith("digits") or name == "omniglot28"):
        raise ValueError(f"{name!r} has no labels (digits and omniglot28 do)")
    if name == "digits":
        return digits(binarize=False if binarize is None else binarize, seed=seed, labels=labels)
    if name == "digits-binary":
        return digits(binarize=True, seed=seed, labels=labels)
    if name == "omniglot28":
        return omniglot28(seed=seed, labels=labels)  # binary already: both binarizations leave it unchanged
    if name.startswith("toy:"):
        x = sample(name[len("toy:") :], 14_000, seed=seed)
        return Splits(x[:10_000], x[10_000:12_000], x[12_000:])
    if name.startswith("idx:"):
        return _split_by_image(idx_images(name[len("idx:") :], binarize=binarize or False, seed=seed), seed)
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)} "
                     f"(toy names: {', '.join(TOY_DENSITIES)})")  # fmt: skip
