"""Tests of vision3d.body.pose_prior: EM against scikit-learn's GaussianMixture, the SMPLify energy and the mixture
density against scipy, gradients, the .npz format and its validation, the shipped prior (a refit reproduces it; it
saw the training clips only), fitting with it, and the learning bar on held-out motion (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from vision3d.body.fitting import FitConfig, check_fit_config, fit_to_keypoints, pa_mpjpe
from vision3d.body.pose_prior import (
    DEFAULT_COMPONENTS,
    GaussianMixturePrior,
    default_pose_prior,
    default_prior_path,
    em_step,
    fit_gmm,
    gmm_fit_config,
    main,
    motion_frames,
)
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS, PeopleConfig, clip_motions, sample_people

F64 = torch.float64


def toy_mixture(dim: int = 3, k: int = 3, seed: int = 0) -> GaussianMixturePrior:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(k, dim, dim))
    covariances = factors @ factors.transpose(0, 2, 1) + 0.3 * np.eye(dim)
    weights = rng.uniform(0.5, 1.5, k)
    means = 3.0 * rng.normal(size=(k, dim))
    return GaussianMixturePrior(torch.from_numpy(weights / weights.sum()), torch.from_numpy(means),
                                torch.from_numpy(covariances))


def clustered_data(seed: int = 0, n: int = 900) -> np.ndarray:
    """Three well-separated anisotropic clusters in 3D: EM from any sensible start finds the same optimum."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 7.0, -2.0]])
    mixing = rng.normal(size=(3, 3, 3)) * 0.6
    labels = rng.integers(3, size=n)
    return centres[labels] + np.einsum("nij,nj->ni", mixing[labels], rng.normal(size=(n, 3)))


# ---------------------------------------------------------------------------------------------------------------
# EM against scikit-learn


def test_em_reaches_sklearns_likelihood_on_separated_clusters() -> None:
    x = clustered_data()
    ours = fit_gmm(x, n_components=3, seed=0, ridge=1e-6, tol=1e-10)
    reference = GaussianMixture(3, covariance_type="full", reg_covar=1e-6, tol=1e-10, max_iter=1000, random_state=0)
    reference.fit(x)
    assert float(ours.log_likelihood(torch.from_numpy(x)).mean()) == pytest.approx(reference.score(x), abs=1e-6)
    order = np.argsort(ours.means[:, 0].numpy() + 10 * ours.means[:, 1].numpy())
    ref_order = np.argsort(reference.means_[:, 0] + 10 * reference.means_[:, 1])
    np.testing.assert_allclose(ours.means.numpy()[order], reference.means_[ref_order], atol=1e-5)
    np.testing.assert_allclose(ours.weights.numpy()[order], reference.weights_[ref_order], atol=1e-6)


def test_sklearn_optimum_on_pose_data_is_a_fixed_point_of_our_em_step() -> None:
    """Independent of initialisation: at sklearn's converged mixture (same ridge convention: ``reg_covar`` added to
    the diagonal), one of our EM steps changes nothing and reports sklearn's log-likelihood."""
    x, _ = motion_frames(clip_motions(TRAIN_CLIPS, mirrors=True))
    x = x[::3].numpy()  # every third frame keeps it quick
    ridge = 0.03
    reference = GaussianMixture(4, covariance_type="full", reg_covar=ridge, tol=1e-12, max_iter=2000, random_state=0)
    reference.fit(x)
    prior = GaussianMixturePrior(torch.from_numpy(reference.weights_), torch.from_numpy(reference.means_),
                                 torch.from_numpy(reference.covariances_))  # fmt: skip
    stepped, mean_ll = em_step(prior, torch.from_numpy(x), ridge)
    assert mean_ll == pytest.approx(reference.score(x), abs=1e-8)
    np.testing.assert_allclose(stepped.weights.numpy(), reference.weights_, atol=1e-7)
    np.testing.assert_allclose(stepped.means.numpy(), reference.means_, atol=1e-6)
    np.testing.assert_allclose(stepped.covariances.numpy(), reference.covariances_, atol=1e-6)


def test_em_never_decreases_the_likelihood_and_sample_weights_act_as_repeats() -> None:
    x = torch.from_numpy(clustered_data(seed=1, n=300))
    prior = fit_gmm(x, n_components=3, seed=0, ridge=1e-3, max_iter=1)
    history = []
    for _ in range(15):
        prior, mean_ll = em_step(prior, x, 1e-3)
        history.append(mean_ll)
    assert all(b >= a - 1e-12 for a, b in zip(history, history[1:], strict=False))
    # Weight 2 on the first 100 points == those points twice (same seed: k-means++ draws differ, so compare optima
    # through a fixed-point check instead of raw parameters).
    weight = torch.ones(300, dtype=F64)
    weight[:100] = 2.0
    weighted = fit_gmm(x, 3, seed=0, ridge=1e-3, sample_weight=weight, tol=1e-12)
    repeated, _ = em_step(weighted, torch.cat([x[:100], x]), 1e-3)
    torch.testing.assert_close(repeated.means, weighted.means, atol=1e-6, rtol=0)


def test_fit_gmm_is_deterministic_and_rejects_bad_input() -> None:
    x = clustered_data(n=200)
    first, second = fit_gmm(x, 3, seed=5), fit_gmm(x, 3, seed=5)
    torch.testing.assert_close(first.covariances, second.covariances, rtol=0, atol=0)
    with pytest.raises(ValueError, match="n_components"):
        fit_gmm(x[:2], 3)
    with pytest.raises(ValueError, match="ridge"):
        fit_gmm(x, 3, ridge=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        fit_gmm(np.full((10, 2), np.nan), 2)


# ---------------------------------------------------------------------------------------------------------------
# Energy and density


def test_energy_and_nll_equal_scipy_by_hand() -> None:
    prior = toy_mixture(dim=3, k=3)
    x = torch.from_numpy(np.random.default_rng(1).normal(scale=3.0, size=(20, 3)))
    logpdf = np.stack([multivariate_normal(prior.means[k].numpy(), prior.covariances[k].numpy()).logpdf(x.numpy())
                       for k in range(3)], axis=-1)  # fmt: skip
    log_w = np.log(prior.weights.numpy())
    # E = min_k(-log w_k + 1/2 maha + 1/2 log det) = min_k(-log w_k - logpdf_k) - D/2 log(2 pi)
    expected_energy = (-log_w - logpdf).min(-1) - 1.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(prior.energy(x).numpy(), expected_energy, rtol=1e-10)
    expected_nll = -np.log((np.exp(logpdf) * prior.weights.numpy()).sum(-1))
    np.testing.assert_allclose(prior.negative_log_likelihood(x).numpy(), expected_nll, rtol=1e-10)
    assert bool((prior.energy(x) >= prior.negative_log_likelihood(x) - 1.5 * math.log(2 * math.pi) - 1e-12).all())


def test_mixture_density_integrates_to_one_in_2d() -> None:
    prior = toy_mixture(dim=2, k=3, seed=2)
    grid = torch.linspace(-25.0, 25.0, 801, dtype=F64)
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    density = prior.log_likelihood(torch.stack([u.reshape(-1), v.reshape(-1)], -1)).exp()
    step = float(grid[1] - grid[0])
    assert float(density.sum()) * step * step == pytest.approx(1.0, abs=1e-4)


def test_gradients_are_finite_and_match_finite_differences() -> None:
    prior = default_pose_prior()
    x, _ = motion_frames(clip_motions(("run",), mirrors=False))
    pose = (x[:4] + 0.05).clone().requires_grad_(True)
    for value in (prior.energy(pose), prior.negative_log_likelihood(pose)):
        (grad,) = torch.autograd.grad(value.sum(), pose)
        assert bool(torch.isfinite(grad).all()) and float(grad.abs().max()) > 0
    assert torch.autograd.gradcheck(lambda p: prior.energy(p), (pose[:2].detach().clone().requires_grad_(True),))
    small = toy_mixture()
    assert torch.autograd.gradcheck(small.negative_log_likelihood, (torch.randn(3, 3, dtype=F64, requires_grad=True),))


# ---------------------------------------------------------------------------------------------------------------
# Files


def test_save_load_round_trip(tmp_path) -> None:
    prior = GaussianMixturePrior(*(getattr(toy_mixture(), k) for k in ("weights", "means", "covariances")),
                                 clips=("a", "b_mirror"))  # fmt: skip
    path = tmp_path / "prior.npz"
    prior.save(path)
    loaded = GaussianMixturePrior.load(path)
    for key in ("weights", "means", "covariances"):
        torch.testing.assert_close(getattr(loaded, key), getattr(prior, key), rtol=0, atol=0)
    assert loaded.clips == ("a", "b_mirror")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("means"), "missing key"),
        (lambda d: d.update(means=d["means"][:, :2]), "covariances must have shape"),
        (lambda d: d.update(weights=d["weights"][:2]), "means must have shape"),
        (lambda d: d["covariances"].__setitem__((0, 0, 0), np.nan), "non-finite"),
        (lambda d: d["covariances"].__setitem__(0, -np.eye(3)), "not positive definite"),
        (lambda d: d.update(weights=d["weights"] * 2), "sum to 1"),
        (lambda d: d.update(means=np.array(["x"] * 9).reshape(3, 3)), "numeric"),
    ],
)
def test_load_refuses_bad_files(tmp_path, change, message) -> None:
    prior = toy_mixture()
    data = {"weights": prior.weights.numpy().copy(), "means": prior.means.numpy().copy(),
            "covariances": prior.covariances.numpy().copy()}  # fmt: skip
    change(data)
    path = tmp_path / "bad.npz"
    np.savez(path, **data)
    with pytest.raises(ValueError, match=message) as error:
        GaussianMixturePrior.load(path)
    assert str(path) in str(error.value)


def test_load_refuses_a_file_that_is_not_npz(tmp_path) -> None:
    path = tmp_path / "junk.npz"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        GaussianMixturePrior.load(path)


def test_shipped_prior_is_the_clis_refit_on_train_clips_only(tmp_path) -> None:
    shipped = default_pose_prior()
    assert default_prior_path().stat().st_size < 1_000_000
    assert shipped.means.shape == (DEFAULT_COMPONENTS, 69)
    assert shipped.clips == tuple(m.name for m in clip_motions(TRAIN_CLIPS, mirrors=True))
    assert not any(c.removesuffix("_mirror") in TEST_CLIPS for c in shipped.clips)
    main(["--fit", "--out", str(tmp_path / "refit.npz")])
    refit = GaussianMixturePrior.load(tmp_path / "refit.npz")
    for key in ("weights", "means", "covariances"):
        torch.testing.assert_close(getattr(refit, key), getattr(shipped, key), rtol=1e-6, atol=1e-9)


def test_cli_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--evaluate" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# Fitting with the prior


def test_fit_config_accepts_gmm_and_rejects_unknown_priors() -> None:
    check_fit_config(FitConfig(pose_prior="gmm"))
    check_fit_config(FitConfig(pose_prior=toy_mixture()))
    with pytest.raises(ValueError, match="pose_prior"):
        check_fit_config(FitConfig(pose_prior="vposer"))  # type: ignore[arg-type]


def test_fit_with_gmm_prior_runs_and_uses_it() -> None:
    from vision3d.body.model import BodyModel

    model = BodyModel.default(dtype=F64, device="cpu")
    people = sample_people(2, PeopleConfig(clips=TRAIN_CLIPS, yaw_degrees=35, elevation_degrees=(-5, 10)), seed=3,
                           model=model)  # fmt: skip
    confidences = torch.ones(2, 24, dtype=F64)
    short = {"iterations": (20, 30), "multi_start": False}
    gmm = fit_to_keypoints(model, people.keypoints, confidences, people.camera, gmm_fit_config(**short))
    same = fit_to_keypoints(model, people.keypoints, confidences, people.camera,
                            gmm_fit_config(pose_prior=default_pose_prior(), **short))  # fmt: skip
    gaussian = fit_to_keypoints(model, people.keypoints, confidences, people.camera, FitConfig(**short))
    assert bool(torch.isfinite(gmm.joints3d).all())
    torch.testing.assert_close(gmm.joints3d, same.joints3d, rtol=0, atol=0)  # "gmm" is the shipped prior
    assert not torch.allclose(gmm.joints3d, gaussian.joints3d)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="bar not reached: median PA-MPJPE 6.8 cm on these 24 held-out scenes (seed 7) "
                   "with the GMM prior, bar 6 cm; benchmark (seed 0, 24 scenes, 512 px): GMM 7.5 cm vs Gaussian "
                   "14.5 cm on the test clips, 3.0 vs 6.8 on the train clips -- 4 training motions do not fully "
                   "transfer to new ones")
def test_gmm_prior_meets_the_bar_on_held_out_motion() -> None:
    """The issue's protocol on clips the prior never saw (TEST_CLIPS with mirrors, yaw +-35 deg, elevation -5..10,
    a 512 x 512 image as in the fitting tests, 1 px noise, all confidences 1): median PA-MPJPE <= 6 cm (the issue
    measured ~11 cm with the diagonal Gaussian)."""
    from vision3d.body.model import BodyModel

    model = BodyModel.default(dtype=F64, device="cpu")
    n = 24
    config = PeopleConfig(clips=TEST_CLIPS, yaw_degrees=35, elevation_degrees=(-5, 10), image_size=512)
    people = sample_people(n, config, seed=7, model=model)
    noise = torch.randn(people.keypoints.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    fit = fit_to_keypoints(model, people.keypoints + noise, torch.ones(n, 24, dtype=F64), people.camera,
                           gmm_fit_config(iterations=(100, 400)))  # fmt: skip
    error_cm = 100.0 * pa_mpjpe(fit.joints3d, people.joints3d)
    assert float(fit.reprojection_error.mean()) < 2.0  # the fit explains the keypoints (noise is 1 px)
    assert float(error_cm.median()) <= 6.0, f"median PA-MPJPE {float(error_cm.median()):.1f} cm"


@pytest.mark.slow
def test_gmm_prior_from_the_learned_start_meets_the_bar_on_held_out_motion() -> None:
    """The same protocol and scenes, the mixture prior's fit started from the learned fitter's estimate (both learned
    from the training clips only) instead of from the 16 depth hypotheses, with the same 500 iterations: median
    PA-MPJPE <= 6 cm. Measured: 5.75 cm here; 6.00 and 5.99 on the scenes of seeds 0 and 1 (README)."""
    from vision3d.body.model import BodyModel
    from vision3d.body.pose_prior import learned_start_fit

    torch.set_num_threads(1)
    model = BodyModel.default(dtype=F64, device="cpu")
    n = 24
    config = PeopleConfig(clips=TEST_CLIPS, yaw_degrees=35, elevation_degrees=(-5, 10), image_size=512)
    people = sample_people(n, config, seed=7, model=model)
    noise = torch.randn(people.keypoints.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    fit = learned_start_fit(model, people.keypoints + noise, torch.ones(n, 24, dtype=F64), people.camera)
    error_cm = 100.0 * pa_mpjpe(fit.joints3d, people.joints3d)
    assert fit.loss_history.shape[0] == 500 - 6  # the learned steps count against the budget
    assert float(fit.reprojection_error.mean()) < 2.0
    assert float(error_cm.median()) <= 6.0, f"median PA-MPJPE {float(error_cm.median()):.1f} cm"
