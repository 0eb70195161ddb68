r"""A pose prior learned from motion capture: a Gaussian mixture over body poses, as in SMPLify (Bogo et al., 2016).

    from vision3d.body.pose_prior import default_pose_prior, fit_gmm_prior
    prior = default_pose_prior()                       # shipped: fitted on TRAIN_CLIPS and their mirrors
    prior.energy(body_pose)                            # [B] SMPLify's E_theta of axis-angle poses [B, 69]
    fit = fit_to_keypoints(model, keypoints, confidences, camera, gmm_fit_config())   # fitting with it

    python -m vision3d.body.pose_prior --fit --out vision3d/body/data/pose_prior_gmm.npz   # regenerate the file
    python -m vision3d.body.pose_prior --evaluate --samples 8                             # Gaussian vs GMM fits

The model (course notation): the 69 axis-angle numbers ``theta`` of the 23 body joints (joint ``j`` at
``3 (j - 1) : 3 j``; the root is not part of the pose) follow a mixture of ``K`` full-covariance Gaussians,

.. math::

    p(\theta) = \sum_k w_k \, N(\theta; \mu_k, \Sigma_k),

fitted by expectation-maximisation to the frames of mocap clips. Its energy, as SMPLify uses it, replaces the
sum over components by the best one (the bound ``log sum_k a_k >= max_k log a_k``):

.. math::

    E_\theta(\theta) = \min_k \Big( -\log w_k + \tfrac12 (\theta - \mu_k)^\top \Sigma_k^{-1} (\theta - \mu_k)
                                      + \tfrac12 \log\det\Sigma_k \Big),

which equals ``-max_k log(w_k N(theta; mu_k, Sigma_k)) - (69 / 2) log(2 pi)``: up to that constant, the negative
log-likelihood of the best single component. Within a component the energy is a quadratic whose gradient pulls
towards that component's mean along its covariance's principal axes, so a pose that the keypoints leave
ambiguous (a limb tilting towards or away from the camera) is pulled to how people actually move, and the
correlations between joints (the arms swing against the legs when walking) come with it -- what a diagonal
Gaussian around the rest pose cannot express. :meth:`GaussianMixturePrior.negative_log_likelihood` gives the full
``-log p(theta)`` (a log-sum-exp over the components) for when a smooth density is wanted.

EM (the course's updates; responsibilities ``r_nk``, optional per-frame weights ``a_n``, ``N_k = sum_n a_n r_nk``):

- E-step: ``r_nk = w_k N(x_n; mu_k, Sigma_k) / sum_l w_l N(x_n; mu_l, Sigma_l)`` (in log space, log-sum-exp);
- M-step: ``w_k = N_k / sum_n a_n``, ``mu_k = sum_n a_n r_nk x_n / N_k``,
  ``Sigma_k = sum_n a_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + ridge I``.

The ridge keeps every covariance positive definite: some pose components never move in the clips (the hand
joints, twists the retargeting left at 0), and a zero variance would make the energy infinite off the data. It is
also a floor on how strictly the prior holds a component: ``ridge = 0.03`` rad^2 lets every angle wander +- 0.17
rad from anything seen, which matters for poses of motions the prior never saw. ``K = 8`` and ``ridge = 0.03``
were chosen by the likelihood of each training clip (+ mirror) under a mixture fitted to the other three (leave one
clip out; K in 1, 4, 8, 16 and ridge in 0.001 ... 0.1: 0.03 was best for every K, K = 1..8 within noise).
Initialisation: k-means++ seeding (seeded generator) and a few Lloyd iterations, then EM until the mean
log-likelihood gains less than ``tol``.

Everything is float64 torch, vectorized over frames (the only Python loops run over components during seeding
and over iterations).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mpenv import tables

if TYPE_CHECKING:
    from vision3d.body.fitting import FitConfig, FitResult, PerspectiveCamera
    from vision3d.body.model import BodyModel
    from vision3d.body.motion import Motion

__all__ = [
    "DEFAULT_COMPONENTS",
    "DEFAULT_RIDGE",
    "GMM_POSE_WEIGHT",
    "GaussianMixturePrior",
    "compare_priors",
    "default_pose_prior",
    "default_prior_path",
    "em_step",
    "fit_gmm",
    "fit_gmm_prior",
    "gmm_fit_config",
    "learned_start_fit",
    "motion_frames",
]

POSE_DIM = 69  # 23 body joints x 3 axis-angle numbers
DEFAULT_COMPONENTS = 8
DEFAULT_RIDGE = 0.03  # rad^2 (module docstring); chosen by held-out likelihood of left-out training clips
DEFAULT_SEED = 0
# lambda_theta of the GMM energy (its data term is in px^2, as for the diagonal Gaussian's weight of 10). Chosen on
# training clips only, leave-one-clip-out: a prior fitted on three training clips (+ mirrors), scenes of the fourth
# (8 scenes, seed 100, folds "walk" and "jump"), median PA-MPJPE over weights 0.3, 1, 3, 10: 3 was best on both
# folds (walk 8.1 cm vs 8.2 at 1; jump 6.3 vs 6.7 at 1, 6.8 at 10). The test clips were not used.
GMM_POSE_WEIGHT = 3.0
_KEYS = ("weights", "means", "covariances")


@dataclass(frozen=True, eq=False)
class GaussianMixturePrior:
    """A Gaussian mixture over body poses: ``weights [K]`` (positive, summing to 1), ``means [K, D]`` and
    ``covariances [K, D, D]`` (symmetric positive definite), float64; ``D = 69`` for body poses. ``clips`` names the
    motions it was fitted on (provenance, saved with it). See the module docstring for the energy."""

    weights: Tensor
    means: Tensor
    covariances: Tensor
    clips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        weights, means, covariances = (torch.as_tensor(t, dtype=torch.float64) for t in
                                       (self.weights, self.means, self.covariances))  # fmt: skip
        problem = _shape_problem(tuple(weights.shape), tuple(means.shape), tuple(covariances.shape))
        if problem is None:
            problem = _value_problem(weights, means, covariances)
        if problem is not None:
            raise ValueError(f"bad GaussianMixturePrior: {problem}")
        chol = torch.linalg.cholesky(covariances)
        eye = torch.eye(means.shape[1], dtype=torch.float64).expand_as(covariances)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)
        object.__setattr__(self, "clips", tuple(self.clips))
        # Whitening maps W_k = L_k^{-1}: (theta - mu)^T Sigma^{-1} (theta - mu) = ||W_k (theta - mu)||^2, so the
        # energy needs a matrix product, never a solve, and autograd through it is plain linear algebra.
        object.__setattr__(self, "_whiten", torch.linalg.solve_triangular(chol, eye, upper=False))
        object.__setattr__(self, "_log_det", 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1))

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def _mahalanobis(self, x: Tensor) -> Tensor:
        """``(x - mu_k)^T Sigma_k^{-1} (x - mu_k)`` ``[B, K]`` of ``x [B, D]``, in ``x``'s dtype and device."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"poses must have shape [B, {self.dim}], got {tuple(x.shape)}")
        means = self.means.to(x)
        whiten = self._whiten.to(x)  # type: ignore[attr-defined]
        white = torch.einsum("kde,bke->bkd", whiten, x[:, None, :] - means[None])
        return (white * white).sum(-1)

    def component_log_density(self, x: Tensor) -> Tensor:
        """``log w_k + log N(x; mu_k, Sigma_k)`` ``[B, K]`` of poses ``x [B, D]``."""
        log_det = self._log_det.to(x)  # type: ignore[attr-defined]
        return (torch.log(self.weights.to(x)) - 0.5 * (self._mahalanobis(x) + log_det)
                - 0.5 * self.dim * math.log(2.0 * math.pi))  # fmt: skip

    def log_likelihood(self, x: Tensor) -> Tensor:
        """``log p(x)`` ``[B]``: log-sum-exp of :meth:`component_log_density` over the components."""
        return torch.logsumexp(self.component_log_density(x), dim=-1)

    def negative_log_likelihood(self, x: Tensor) -> Tensor:
        """``-log p(x)`` ``[B]``: the full mixture's energy (smooth; :meth:`energy` is SMPLify's min version)."""
        return -self.log_likelihood(x)

    def energy(self, body_pose: Tensor) -> Tensor:
        """SMPLify's ``E_theta`` ``[B]`` of axis-angle poses ``[B, D]``:
        ``min_k (-log w_k + 1/2 (theta - mu_k)^T Sigma_k^{-1} (theta - mu_k) + 1/2 log det Sigma_k)``.
        Differentiable: the gradient is that of the minimizing component."""
        log_det = self._log_det.to(body_pose)  # type: ignore[attr-defined]
        per_component = -torch.log(self.weights.to(body_pose)) + 0.5 * (self._mahalanobis(body_pose) + log_det)
        return per_component.min(dim=-1).values

    def save(self, path: str | Path) -> None:
        """Write ``weights``, ``means``, ``covariances`` (float64) and ``clips`` (strings) to an ``.npz``."""
        np.savez_compressed(path, weights=self.weights.numpy(), means=self.means.numpy(),
                            covariances=self.covariances.numpy(), clips=np.array(self.clips, dtype=str))  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> GaussianMixturePrior:
        """Read a file written by :meth:`save`; ``ValueError`` naming the file and the problem if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: np.array(data[key]) for key in data.files}
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable .npz pose prior ({error})") from error
        missing = [key for key in _KEYS if key not in arrays]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)} (expected {', '.join(_KEYS)})")
        weights, means, covariances = (arrays[key] for key in _KEYS)
        problem = _shape_problem(weights.shape, means.shape, covariances.shape)
        if problem is None and not all(a.dtype.kind in "fiu" for a in (weights, means, covariances)):
            problem = "weights, means and covariances must be numeric arrays"
        if problem is None:
            problem = _value_problem(*(torch.from_numpy(a.astype(np.float64)) for a in (weights, means, covariances)))
        if problem is not None:
            raise ValueError(f"{path}: {problem}")
        clips = tuple(str(c) for c in arrays["clips"].reshape(-1)) if "clips" in arrays else ()
        return cls(torch.from_numpy(weights.astype(np.float64)), torch.from_numpy(means.astype(np.float64)),
                   torch.from_numpy(covariances.astype(np.float64)), clips)  # fmt: skip


def _shape_problem(weights: tuple[int, ...], means: tuple[int, ...], covariances: tuple[int, ...]) -> str | None:
    if len(weights) != 1 or weights[0] < 1:
        return f"weights must have shape [K] with K >= 1, got {weights}"
    k = weights[0]
    if len(means) != 2 or means[0] != k or means[1] < 1:
        return f"means must have shape [K={k}, D], got {means}"
    if covariances != (k, means[1], means[1]):
        return f"covariances must have shape [K, D, D] = {(k, means[1], means[1])}, got {covariances}"
    return None


def _value_problem(weights: Tensor, means: Tensor, covariances: Tensor) -> str | None:
    for name, value in (("weights", weights), ("means", means), ("covariances", covariances)):
        if not bool(torch.isfinite(value).all()):
            return f"{name} contain non-finite values (NaN or inf)"
    if not bool((weights > 0).all()) or abs(float(weights.sum()) - 1.0) > 1e-6:
        return f"weights must be positive and sum to 1, got sum {float(weights.sum()):.6g}, min {float(weights.min())}"
    if not torch.allclose(covariances, covariances.transpose(-1, -2), rtol=1e-8, atol=1e-10):
        return "covariances are not symmetric"
    _, info = torch.linalg.cholesky_ex(covariances)
    if bool((info != 0).any()):
        bad = [int(k) for k in torch.nonzero(info).reshape(-1)]
        return f"covariance(s) of component(s) {bad} not positive definite"
    return None


# ---------------------------------------------------------------------------------------------------------------
# EM


def _weighted_params(x: Tensor, resp: Tensor, sample_weight: Tensor, ridge: float) -> tuple[Tensor, Tensor, Tensor]:
    """M-step: ``(weights [K], means [K, D], covariances [K, D, D])`` from responsibilities ``resp [N, K]``."""
    r = resp * sample_weight[:, None]
    nk = r.sum(0) + 10 * torch.finfo(x.dtype).eps  # an emptied component keeps finite (ridge-only) parameters
    means = r.T @ x / nk[:, None]
    centred = x[None] - means[:, None]  # [K, N, D]
    covariances = torch.einsum("nk,knd,kne->kde", r, centred, centred) / nk[:, None, None]
    covariances = 0.5 * (covariances + covariances.transpose(-1, -2))  # exact symmetry for the Cholesky
    covariances = covariances + ridge * torch.eye(x.shape[1], dtype=x.dtype)
    return nk / sample_weight.sum(), means, covariances


def em_step(
    prior: GaussianMixturePrior, x: Tensor, ridge: float = DEFAULT_RIDGE, sample_weight: Tensor | None = None
) -> tuple[GaussianMixturePrior, float]:
    """One EM iteration from ``prior`` on data ``x [N, D]``: ``(updated prior, weighted mean log-likelihood of x
    under the given prior)``. A maximum of the (ridge-regularized) likelihood is a fixed point of this map."""
    x = torch.as_tensor(x, dtype=torch.float64)
    sample_weight = _sample_weight(sample_weight, x)
    log_joint = prior.component_log_density(x)  # [N, K]
    log_norm = torch.logsumexp(log_joint, dim=-1, keepdim=True)
    resp = torch.exp(log_joint - log_norm)
    mean_ll = float((sample_weight * log_norm[:, 0]).sum() / sample_weight.sum())
    updated = GaussianMixturePrior(*_weighted_params(x, resp, sample_weight, ridge), clips=prior.clips)
    return updated, mean_ll


def _sample_weight(sample_weight: Tensor | None, x: Tensor) -> Tensor:
    if sample_weight is None:
        return torch.ones(x.shape[0], dtype=torch.float64)
    sample_weight = torch.as_tensor(sample_weight, dtype=torch.float64)
    if sample_weight.shape != (x.shape[0],) or not bool((sample_weight >= 0).all()) or sample_weight.sum() <= 0:
        raise ValueError(f"sample_weight must be [N={x.shape[0]}] non-negative with a positive sum")
    return sample_weight


def _kmeans_init(x: Tensor, k: int, rng: np.random.Generator, sample_weight: Tensor, lloyd_steps: int) -> Tensor:
    """Hard assignments ``[N, K]`` (one-hot) of k-means++ seeding (Arthur & Vassilvitskii 2007) then Lloyd steps."""
    centres = [int(rng.choice(x.shape[0], p=(sample_weight / sample_weight.sum()).numpy()))]
    nearest = ((x - x[centres[0]]) ** 2).sum(-1)
    for _ in range(1, k):  # each new centre with probability ~ weight * squared distance to the nearest centre
        p = (sample_weight * nearest).numpy()
        centres.append(int(rng.choice(x.shape[0], p=p / p.sum())))
        nearest = torch.minimum(nearest, ((x - x[centres[-1]]) ** 2).sum(-1))
    means = x[centres].clone()
    for _ in range(lloyd_steps):
        labels = torch.cdist(x, means).argmin(-1)
        one_hot = torch.nn.functional.one_hot(labels, k).to(x.dtype) * sample_weight[:, None]
        counts = one_hot.sum(0)
        # A centre that lost all its points stays where it was rather than becoming 0/0.
        means = torch.where(counts[:, None] > 0, one_hot.T @ x / counts.clamp(min=1e-12)[:, None], means)
    return torch.nn.functional.one_hot(torch.cdist(x, means).argmin(-1), k).to(x.dtype)


def fit_gmm(
    x: Tensor | np.ndarray,
    n_components: int = DEFAULT_COMPONENTS,
    seed: int = DEFAULT_SEED,
    ridge: float = DEFAULT_RIDGE,
    max_iter: int = 500,
    tol: float = 1e-7,
    sample_weight: Tensor | np.ndarray | None = None,
    lloyd_steps: int = 10,
) -> GaussianMixturePrior:
    """EM fit of a ``n_components`` full-covariance Gaussian mixture to ``x [N, D]`` (module docstring): k-means++
    from ``numpy.random.default_rng(seed)``, then EM until the mean log-likelihood gains less than ``tol`` or
    ``max_iter`` iterations. ``sample_weight [N]`` weighs the frames (e.g. each clip equally)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < n_components or n_components < 1:
        raise ValueError(f"need data [N, D] with N >= n_components = {n_components}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("data contain non-finite values")
    if not ridge > 0:
        raise ValueError(f"ridge must be positive (it keeps the covariances invertible), got {ridge}")
    weight = _sample_weight(None if sample_weight is None else torch.as_tensor(sample_weight), x)
    resp = _kmeans_init(x, n_components, np.random.default_rng(seed), weight, lloyd_steps)
    prior = GaussianMixturePrior(*_weighted_params(x, resp, weight, ridge))
    previous = -math.inf
    for _ in range(max_iter):
        prior, mean_ll = em_step(prior, x, ridge, weight)
        if mean_ll - previous < tol:  # EM never decreases the likelihood, so a small gain means converged
            break
        previous = mean_ll
    return prior


def motion_frames(motions: Sequence[Motion]) -> tuple[Tensor, Tensor]:
    """Body poses ``[N, 69]`` (joints 1..23 of every frame) of ``motions``, and per-frame weights ``[N]`` that give
    every motion the same total weight (as :func:`vision3d.body.synthetic.sample_people` draws them)."""
    poses, weights = [], []
    for motion in motions:
        frames = np.asarray(motion.poses, dtype=np.float64)[:, 1:].reshape(motion.n_frames, -1)
        poses.append(frames)
        weights.append(np.full(len(frames), 1.0 / len(frames)))
    return torch.from_numpy(np.concatenate(poses)), torch.from_numpy(np.concatenate(weights) * len(motions))


def fit_gmm_prior(
    motions: Sequence[Motion],
    n_components: int = DEFAULT_COMPONENTS,
    seed: int = DEFAULT_SEED,
    ridge: float = DEFAULT_RIDGE,
    balance_clips: bool = True,
) -> GaussianMixturePrior:
    """The pose prior of ``motions``' frames (body joints 1..23; the root orientation is the camera's business):
    :func:`fit_gmm` with every motion weighted equally if ``balance_clips`` (else every frame: long clips
    dominate -- ``cmu_jumps`` has 80 % of the training frames)."""
    if not motions:
        raise ValueError("no motions to fit a pose prior to")
    x, weight = motion_frames(motions)
    prior = fit_gmm(x, n_components, seed, ridge, sample_weight=weight if balance_clips else None)
    return GaussianMixturePrior(prior.weights, prior.means, prior.covariances, tuple(m.name for m in motions))


# ---------------------------------------------------------------------------------------------------------------
# The shipped prior and its use in fitting


def default_prior_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "pose_prior_gmm.npz"


_DEFAULT: GaussianMixturePrior | None = None


def default_pose_prior() -> GaussianMixturePrior:
    """The shipped prior: :func:`fit_gmm_prior` of :data:`~vision3d.body.synthetic.TRAIN_CLIPS` and their mirrors
    with the default settings (``python -m vision3d.body.pose_prior --fit`` regenerates it). Loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = GaussianMixturePrior.load(default_prior_path())
    return _DEFAULT


def gmm_fit_config(**changes) -> FitConfig:
    """A :class:`~vision3d.body.fitting.FitConfig` fitting with the shipped GMM prior at its tuned weight
    :data:`GMM_POSE_WEIGHT`; ``changes`` override any field."""
    from vision3d.body.fitting import FitConfig

    return FitConfig(**{"pose_prior": "gmm", "pose_weight": GMM_POSE_WEIGHT, **changes})


def compare_priors(
    samples: int = 16,
    seed: int = 0,
    iterations: tuple[int, int] = (100, 400),
    noise_px: float = 1.0,
    split: Sequence[str] = ("test", "train"),
    image_size: int = 512,
) -> list[dict[str, float | str | int]]:
    """Fit the same synthetic scenes with the diagonal Gaussian prior (``FitConfig()``), the GMM prior
    (:func:`gmm_fit_config`) and the GMM prior from the learned fitter's start (:func:`learned_start_fit`, the same
    total of iterations): one row per (clips, prior) with the median and 90th-percentile PA-MPJPE (cm) and the
    mean reprojection error (px). Scenes: ``sample_people(samples, PeopleConfig(clips, yaw_degrees=35,
    elevation_degrees=(-5, 10), image_size=image_size), seed)`` and keypoint noise ``N(0, noise_px^2)`` from
    ``seed``, all confidences 1. The default 512 x 512 image is the fitting tests' (a person about 400 pixels tall);
    at 64 x 64 the same 1 px of noise is eight times larger relative to the body."""
    from vision3d.body.fitting import FitConfig, fit_to_keypoints, pa_mpjpe
    from vision3d.body.model import BodyModel
    from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS, PeopleConfig, sample_people

    model = BodyModel.default(dtype=torch.float64, device="cpu")
    rows: list[dict[str, float | str | int]] = []
    for name in split:
        clips = {"test": TEST_CLIPS, "train": TRAIN_CLIPS}[name]
        config = PeopleConfig(clips=clips, yaw_degrees=35, elevation_degrees=(-5, 10), image_size=image_size)
        people = sample_people(samples, config, seed=seed, model=model)
        noise = torch.randn(people.keypoints.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        keypoints = people.keypoints + noise_px * noise
        confidences = torch.ones(samples, people.keypoints.shape[1], dtype=torch.float64)
        for prior in ("gaussian", "gmm", "gmm, learned start"):
            if prior == "gmm, learned start":
                fit = learned_start_fit(model, keypoints, confidences, people.camera, sum(iterations))
            else:
                make = FitConfig if prior == "gaussian" else gmm_fit_config
                fit = fit_to_keypoints(model, keypoints, confidences, people.camera, make(iterations=iterations))
            error = 100.0 * pa_mpjpe(fit.joints3d, people.joints3d)
            rows.append({"clips": f"{name} ({', '.join(clips)})", "prior": prior, "samples": samples,
                         "median_cm": float(error.median()), "p90_cm": float(torch.quantile(error, 0.9)),
                         "reprojection_px": float(fit.reprojection_error.mean())})  # fmt: skip
    return rows


def learned_start_fit(model: BodyModel, keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera,
                      iterations: int = 500) -> FitResult:
    """Fitting with the mixture prior from the learned fitter's estimate instead of from the T-pose's 16 depth
    hypotheses: the shipped :mod:`~vision3d.body.learned_fitting` update (trained on the same training clips as the
    prior) unrolled for its steps, then ``iterations`` minus those steps of the body stage of
    :func:`~vision3d.body.fitting.fit_to_keypoints` with :func:`gmm_fit_config` (one start; SPIN's recipe). The
    learned start settles the depth ambiguities the prior alone leaves to the choice among the hypotheses."""
    from vision3d.body.learned_fitting import default_learned_fitter, learned_fit

    network = default_learned_fitter()
    return learned_fit(model, keypoints, confidences, camera, network, max(iterations - network.config.steps, 0),
                       gmm_fit_config())


def markdown_table(rows: list[dict[str, float | str | int]]) -> str:
    return tables.markdown_table(rows, {
        "clips": "{clips}", "prior": "{prior}", "samples": "{samples}", "PA-MPJPE median (cm)": "{median_cm:.1f}",
        "PA-MPJPE p90 (cm)": "{p90_cm:.1f}", "reprojection (px)": "{reprojection_px:.2f}"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vision3d.body.pose_prior", description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="fit the GMM prior on TRAIN_CLIPS + mirrors, save it")
    parser.add_argument("--out", type=Path, default=default_prior_path(), help="where --fit writes (.npz)")
    parser.add_argument("--components", type=int, default=DEFAULT_COMPONENTS, help="K, mixture components")
    parser.add_argument("--ridge", type=float, default=DEFAULT_RIDGE, help="added to each covariance, rad^2")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="k-means++ seed (--fit), scenes (--evaluate)")
    parser.add_argument("--evaluate", action="store_true", help="fit scenes with the Gaussian and the GMM prior")
    parser.add_argument("--samples", type=int, default=8, help="scenes per split for --evaluate")
    args = parser.parse_args(argv)
    if not (args.fit or args.evaluate):
        parser.error("nothing to do: pass --fit and/or --evaluate")
    torch.set_num_threads(1)
    if args.fit:
        from vision3d.body.synthetic import TRAIN_CLIPS, clip_motions

        prior = fit_gmm_prior(clip_motions(TRAIN_CLIPS, mirrors=True), args.components, args.seed, args.ridge)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        prior.save(args.out)
        print(f"wrote {args.out}: K={prior.n_components}, fitted on {', '.join(prior.clips)}")
    if args.evaluate:
        print(markdown_table(compare_priors(args.samples, args.seed)))


if __name__ == "__main__":
    main()
