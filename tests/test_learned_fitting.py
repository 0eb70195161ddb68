"""Learned gradient descent for body fitting (vision3d.body.learned_fitting): F's inputs, the unroll's plumbing,
checkpoints, a short learning run, and the shipped F against the Adam fitting."""

from __future__ import annotations

import pytest
import torch

from vision3d.body.fitting import FitConfig, fit_to_keypoints, pa_mpjpe, refine_fit
from vision3d.body.learned_fitting import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    KEYPOINT_FEATURES,
    THETA_SIZE,
    LearnedConfig,
    LearnedUpdate,
    default_learned_fitter,
    default_learned_path,
    initial_theta,
    input_features,
    joints_of,
    keypoint_features,
    learned_fit,
    load_learned_fitter,
    main,
    protocol_people,
    save_learned_fitter,
    train,
    unroll,
)
from vision3d.body.model import BodyModel
from vision3d.body.rotations import rotation_6d_to_matrix
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS


@pytest.fixture(scope="module")
def model() -> BodyModel:
    return BodyModel.default(dtype=torch.float64, device="cpu")


@pytest.fixture(scope="module")
def scenes(model):
    """Four protocol scenes from the training clips (the fast tests need no held-out data)."""
    return protocol_people(4, TRAIN_CLIPS, 3, model)


def test_input_features_have_documented_shapes(model, scenes):
    people, keypoints, confidences = scenes
    steps, seen = 5, []

    def spy(gradient, theta, features, step):
        seen.append((gradient.shape, theta.shape, features.shape, step))
        return torch.zeros_like(theta)

    unroll(model, keypoints, confidences, people.camera, spy, steps)
    assert seen == [((4, THETA_SIZE), (4, THETA_SIZE), (4, KEYPOINT_FEATURES), t) for t in range(steps)]
    assert THETA_SIZE == 6 + 23 * 6 + 10 + 3 and KEYPOINT_FEATURES == 48 + 24 + 3
    features = keypoint_features(keypoints, confidences, people.camera)
    theta = initial_theta(model, keypoints, confidences, people.camera)
    inputs = input_features(torch.zeros_like(theta), theta, features, 2, steps)
    assert inputs.shape == (4, 2 * THETA_SIZE + KEYPOINT_FEATURES + steps)
    assert torch.equal(inputs[:, -steps:], torch.eye(steps, dtype=inputs.dtype)[2].expand(4, steps))
    # Normalised keypoints are centred with unit RMS spread.
    normalised = features[:, :48].reshape(4, 24, 2)
    assert torch.allclose(normalised.mean(1), torch.zeros(4, 2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose((normalised**2).sum(-1).mean(-1), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="step"):
        input_features(torch.zeros_like(theta), theta, features, steps, steps)


def test_gradient_step_plumbing_matches_hand_computed_descent(model, scenes):
    """F := -lr * gradient must give one plain gradient-descent step on L_reproj, computed here independently."""
    people, keypoints, confidences = scenes
    lr = 0.03
    iterates = unroll(model, keypoints, confidences, people.camera, lambda g, th, f, t: -lr * g, steps=1)

    theta0 = initial_theta(model, keypoints, confidences, people.camera).detach().requires_grad_(True)
    orient, pose, betas, transl = theta0[:, :6], theta0[:, 6:144], theta0[:, 144:154], theta0[:, 154:]
    joints = model(betas=betas, global_orient=rotation_6d_to_matrix(orient)[:, None],
                   body_pose=rotation_6d_to_matrix(pose.reshape(4, 23, 6)), transl=transl, pose2rot=False,
                   return_verts=False).joints  # fmt: skip
    f, (cx, cy) = people.camera.focal[0], people.camera.principal_point
    pixels = torch.stack([f * joints[..., 0] / joints[..., 2] + cx, f * joints[..., 1] / joints[..., 2] + cy], -1)
    centred = keypoints - keypoints.mean(1, keepdim=True)  # all confidences are 1
    spread = (centred**2).sum(-1).mean(-1).sqrt()
    loss = (((pixels - keypoints) ** 2).sum(-1).mean(-1) / spread**2).sum()
    (gradient,) = torch.autograd.grad(loss, theta0)
    expected = theta0.detach() - lr * gradient

    assert torch.allclose(iterates[0], theta0.detach())
    assert torch.allclose(iterates[1], expected, rtol=1e-10, atol=1e-12)
    assert gradient.abs().max() > 1e-3  # the step is not trivially zero


def test_zero_output_layer_leaves_theta_at_initialisation(model, scenes):
    people, keypoints, confidences = scenes
    network = LearnedUpdate(LearnedConfig(steps=4, hidden=32))
    iterates = unroll(model, keypoints, confidences, people.camera, network, 4)
    theta0 = initial_theta(model, keypoints, confidences, people.camera)
    assert len(iterates) == 5
    for theta in iterates:
        assert torch.equal(theta, theta0)
    fit = learned_fit(model, keypoints, confidences, people.camera, network)
    assert torch.allclose(fit.joints3d, joints_of(model, theta0))
    assert fit.loss_history.shape == (5, 4)


def test_checkpoint_round_trip_and_refusals(model, scenes, tmp_path):
    people, keypoints, confidences = scenes
    torch.manual_seed(0)
    network = LearnedUpdate(LearnedConfig(steps=3, hidden=16, layers=1))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0.0, 0.01)
    save_learned_fitter(network, tmp_path / "ok", {"note": "test"})
    loaded = load_learned_fitter(tmp_path / "ok")
    assert loaded.config == network.config
    a = learned_fit(model, keypoints, confidences, people.camera, network).joints3d
    b = learned_fit(model, keypoints, confidences, people.camera, loaded).joints3d
    assert torch.allclose(a, b, atol=1e-6)

    def broken(name: str, weights=None, config_text: str | None = None):
        directory = tmp_path / name
        save_learned_fitter(network, directory)
        if weights is not None:
            if isinstance(weights, bytes):
                (directory / CHECKPOINT_NAME).write_bytes(weights)
            else:
                torch.save(weights, directory / CHECKPOINT_NAME)
        if config_text is not None:
            (directory / CONFIG_NAME).write_text(config_text)
        return directory

    state = {k: v.clone() for k, v in network.state_dict().items()}
    wrong_shape = {**state, "out.bias": torch.zeros(5)}
    nan = {**state, "out.bias": torch.full_like(state["out.bias"], float("nan"))}
    missing = {k: v for k, v in state.items() if k != "out.bias"}
    for directory, file in (
        (tmp_path / "absent", CONFIG_NAME),
        (broken("garbage", weights=b"not a checkpoint"), CHECKPOINT_NAME),
        (broken("shape", weights=wrong_shape), CHECKPOINT_NAME),
        (broken("nan", weights=nan), CHECKPOINT_NAME),
        (broken("missing", weights=missing), CHECKPOINT_NAME),
        (broken("json", config_text="{not json"), CONFIG_NAME),
        (broken("keys", config_text='{"architecture": {"steps": 3, "colour": 1}}'), CONFIG_NAME),
        (broken("values", config_text='{"architecture": {"steps": 0}}'), CONFIG_NAME),
    ):
        with pytest.raises(ValueError, match=str(directory / file).replace("\\", "\\\\")):
            load_learned_fitter(directory)


def test_shipped_network_loads_and_is_small():
    network = default_learned_fitter()
    assert (default_learned_path() / CHECKPOINT_NAME).stat().st_size < 2_000_000
    assert 4 <= network.config.steps <= 10


def test_cli_help(capsys):
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


LEARNING_MARGIN = 0.8  # trained unroll must be at least 20 % below the initialisation's PA-MPJPE


@pytest.mark.slow
def test_short_training_beats_initialisation_on_held_out_scenes(model):
    torch.set_num_threads(1)
    network, _ = train(LearnedConfig(steps=3, hidden=128, layers=2), iterations=150, batch=64, train_samples=2000,
                       seed=0, log=None)  # fmt: skip
    people, keypoints, confidences = protocol_people(32, TEST_CLIPS, 7, model)
    theta0 = initial_theta(model, keypoints, confidences, people.camera)
    before = pa_mpjpe(joints_of(model, theta0), people.joints3d).median()
    after = pa_mpjpe(learned_fit(model, keypoints, confidences, people.camera, network).joints3d,
                     people.joints3d).median()  # fmt: skip
    assert after < LEARNING_MARGIN * before, f"median PA-MPJPE {100 * after:.1f} cm vs initial {100 * before:.1f} cm"


# The bar (the issue's): on held-out scenes the shipped F reaches the Adam fitting's median PA-MPJPE in at most 1/5
# of Adam's iterations (500 = 100 camera + 400 body). One test per Adam configuration.
BAR_SCENES = 6


@pytest.fixture(scope="module")
def bar_scenes(model):
    return protocol_people(BAR_SCENES, TEST_CLIPS, 0, model)


def _bar(model, bar_scenes, config: FitConfig) -> None:
    torch.set_num_threads(1)
    people, keypoints, confidences = bar_scenes
    network = default_learned_fitter()
    assert network.config.steps <= sum(config.iterations) / 5
    learned = pa_mpjpe(learned_fit(model, keypoints, confidences, people.camera, network).joints3d, people.joints3d)
    adam = pa_mpjpe(fit_to_keypoints(model, keypoints, confidences, people.camera, config).joints3d, people.joints3d)
    assert learned.median() <= adam.median(), (
        f"learned {100 * learned.median():.1f} cm vs Adam {100 * adam.median():.1f} cm (median PA-MPJPE)"
    )


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "bar not met: on these 6 held-out scenes the shipped F (6 steps) has median PA-MPJPE 10.1 cm vs Adam FitConfig() "
    "8.1 cm (500 iterations); on 48 scenes (benchmarks/bench_learned_fitting.py) 10.3 vs 10.7 cm"))  # fmt: skip
def test_shipped_learned_fitting_reaches_adam_default_in_a_fifth_of_the_iterations(model, bar_scenes):
    _bar(model, bar_scenes, FitConfig())


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "bar not met: on these 6 held-out scenes the shipped F (6 steps) has median PA-MPJPE 10.1 cm vs Adam "
    "gmm_fit_config() 6.1 cm (500 iterations); on 48 scenes 10.3 vs 6.8 cm: F generalises poorly to the unseen "
    "test motions (1.7 cm on held-out scenes of the training clips)"))  # fmt: skip
def test_shipped_learned_fitting_reaches_adam_gmm_in_a_fifth_of_the_iterations(model, bar_scenes):
    from vision3d.body.pose_prior import gmm_fit_config

    _bar(model, bar_scenes, gmm_fit_config())


# SPIN's recipe on the same bar: the learned unroll's estimate refined by Adam on the same energy, the two together
# within 1/5 of the Adam fit's iterations (6 learned steps + 94 iterations of the body stage, against 100 + 400 from
# 16 starts), with the refinement at fit_to_keypoints' own step size and annealing (nothing tuned on these scenes).
def _refined_bar(model, bar_scenes, config: FitConfig) -> None:
    torch.set_num_threads(1)
    people, keypoints, confidences = bar_scenes
    network = default_learned_fitter()
    refine = sum(config.iterations) // 5 - network.config.steps
    refined = learned_fit(model, keypoints, confidences, people.camera, network, refine, config)
    assert refined.loss_history.shape == (refine, BAR_SCENES)
    learned = pa_mpjpe(refined.joints3d, people.joints3d)
    adam = pa_mpjpe(fit_to_keypoints(model, keypoints, confidences, people.camera, config).joints3d, people.joints3d)
    assert learned.median() <= adam.median(), (
        f"learned + refined {100 * learned.median():.1f} cm vs Adam {100 * adam.median():.1f} cm (median PA-MPJPE)"
    )


@pytest.mark.slow
def test_learned_fit_refined_reaches_adam_default_in_a_fifth_of_the_iterations(model, bar_scenes):
    """Measured: 7.7 cm against Adam's 8.1 on these 6 scenes (48 scenes: 7.7 against 10.7)."""
    _refined_bar(model, bar_scenes, FitConfig())


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "bar not met on these 6 held-out scenes: the shipped F + 94 iterations of gmm_fit_config() reach median "
    "PA-MPJPE 8.4 cm vs Adam gmm_fit_config() 6.1 cm (500 iterations); on 48 scenes it is 6.1 vs 6.8 cm"))  # fmt: skip
def test_learned_fit_refined_reaches_adam_gmm_in_a_fifth_of_the_iterations(model, bar_scenes):
    from vision3d.body.pose_prior import gmm_fit_config

    _refined_bar(model, bar_scenes, gmm_fit_config())


def test_refinement_from_a_fit_lowers_its_energy_and_checks_its_input(model):
    """refine_fit continues the body stage: with no iterations it returns the start's body, and from a short
    Adam fit 30 more iterations of the same energy lower it by over 10%; a start of other samples is refused."""
    torch.set_num_threads(1)
    people, keypoints, confidences = protocol_people(2, TEST_CLIPS, 3, model)
    config = FitConfig(iterations=(20, 30), multi_start=False, anneal=(1.0,))
    fit = fit_to_keypoints(model, keypoints, confidences, people.camera, config)
    unchanged = refine_fit(model, keypoints, confidences, people.camera, fit, 0, config)
    torch.testing.assert_close(unchanged.joints3d, fit.joints3d, rtol=0, atol=1e-9)  # it starts where the fit ended
    refined = refine_fit(model, keypoints, confidences, people.camera, fit, 30, config)
    assert refined.loss_history.shape == (30, 2)
    assert bool((refined.loss_history[-1] < 0.9 * refined.loss_history[0]).all()), refined.loss_history[[0, -1]]
    with pytest.raises(ValueError, match="same 1 samples"):
        refine_fit(model, keypoints[:1], confidences[:1], people.camera, fit, 5, config)
    with pytest.raises(ValueError, match="refine_iterations"):
        learned_fit(model, keypoints, confidences, people.camera, None, -1)
