"""The hand-written policy formulas against torch.distributions, sampling, action clipping, the
actor-critic module, observation normalisation and the space checks."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, MultivariateNormal, Normal

from agents.policies import (
    ActorCritic,
    CategoricalHead,
    GaussianHead,
    RunningNormalizer,
    categorical_entropy,
    categorical_log_prob,
    check_spaces,
    gaussian_entropy,
    gaussian_log_prob,
    parse_hidden_sizes,
)
from agents.run import Every


def gaussian_batch(seed: int = 0, batch: int = 6, dims: int = 3):
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dims, generator=generator)
    log_std = torch.randn(dims, generator=generator) * 0.5
    actions = mean + torch.randn(batch, dims, generator=generator) * 2.0
    return mean, log_std, actions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_log_prob_and_entropy_match_torch(seed):
    mean, log_std, actions = gaussian_batch(seed)
    normal = Normal(mean, log_std.exp())
    assert torch.allclose(gaussian_log_prob(actions, mean, log_std), normal.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_entropy(log_std), normal.entropy().sum(-1)[0], atol=1e-5)
    diagonal = MultivariateNormal(mean, covariance_matrix=torch.diag(log_std.exp() ** 2))
    assert torch.allclose(gaussian_log_prob(actions, mean, log_std), diagonal.log_prob(actions), atol=1e-5)
    assert torch.allclose(gaussian_entropy(log_std), diagonal.entropy()[0], atol=1e-5)


def test_gaussian_gradients_match_autograd_through_torch():
    mean, log_std, actions = gaussian_batch(3)
    weights = torch.linspace(-1, 1, len(mean))  # a weighted sum, like log pi * advantage
    ours_mean, ours_log_std = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    (weights * gaussian_log_prob(actions, ours_mean, ours_log_std)).sum().backward()
    ref_mean, ref_log_std = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    (weights * Normal(ref_mean, ref_log_std.exp()).log_prob(actions).sum(-1)).sum().backward()
    assert torch.allclose(ours_mean.grad, ref_mean.grad, atol=1e-5)
    assert torch.allclose(ours_log_std.grad, ref_log_std.grad, atol=1e-5)

    ours, ref = log_std.clone().requires_grad_(), log_std.clone().requires_grad_()
    gaussian_entropy(ours).backward()
    Normal(torch.zeros(3), ref.exp()).entropy().sum().backward()
    assert torch.allclose(ours.grad, ref.grad, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_log_prob_entropy_and_gradients_match_torch(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 5, generator=generator) * 3
    actions = torch.randint(0, 5, (8,), generator=generator)
    reference = Categorical(logits=logits)
    assert torch.allclose(categorical_log_prob(logits, actions), reference.log_prob(actions), atol=1e-5)
    assert torch.allclose(categorical_entropy(logits), reference.entropy(), atol=1e-5)

    weights = torch.linspace(-1, 1, 8)
    ours, ref = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    (weights * categorical_log_prob(ours, actions) + 0.1 * categorical_entropy(ours)).sum().backward()
    (weights * Categorical(logits=ref).log_prob(actions) + 0.1 * Categorical(logits=ref).entropy()).sum().backward()
    assert torch.allclose(ours.grad, ref.grad, atol=1e-5)


def test_categorical_log_prob_is_stable_for_large_logits():
    logits = torch.tensor([[1000.0, 0.0, -1000.0]])
    assert torch.isfinite(categorical_log_prob(logits, torch.tensor([2]))).all()
    assert torch.allclose(categorical_entropy(logits), torch.zeros(1), atol=1e-5)


def test_categorical_sampling_follows_the_softmax():
    torch.manual_seed(0)
    head = CategoricalHead(4, 3)
    logits = torch.tensor([0.0, 1.0, 2.0]).expand(200_000, 3)
    counts = torch.bincount(head.sample(logits), minlength=3).double() / len(logits)
    assert torch.allclose(counts, torch.softmax(logits[0], -1).double(), atol=0.005)
    assert torch.equal(head.mode(logits[:2]), torch.tensor([2, 2]))


def test_gaussian_sampling_has_the_mean_and_the_learned_sigma():
    torch.manual_seed(0)
    head = GaussianHead(4, gym.spaces.Box(-1.0, 1.0, (2,), np.float32), init_log_std=-0.5)
    mean = torch.tensor([0.3, -0.2]).expand(100_000, 2)
    samples = head.sample(mean)
    assert torch.allclose(samples.mean(0), mean[0], atol=0.01)
    assert torch.allclose(samples.std(0), torch.full((2,), float(np.exp(-0.5))), atol=0.01)
    assert torch.equal(head.mode(mean[:3]), mean[:3])


def test_gaussian_actions_are_scaled_to_the_box_and_clipped_for_the_env():
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    head = GaussianHead(4, space)
    actions = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-1.0, 1.0], [5.0, -7.0], [-0.5, 0.5]])
    env_actions = head.env_action(actions)
    # [-1, 1] spans [low, high]: torque 2 * a, throttle (a + 1) / 2; beyond the bounds it is clipped
    expected = np.array([[0.0, 0.5], [2.0, 0.0], [-2.0, 1.0], [2.0, 0.0], [-1.0, 0.75]], np.float32)
    assert np.allclose(env_actions, expected)
    assert all(space.contains(a) for a in env_actions)


def test_unbounded_box_dimensions_pass_unscaled():
    head = GaussianHead(4, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    assert np.allclose(head.env_action(torch.tensor([[3.0, -40.0]])), [[3.0, -40.0]])


def test_log_prob_is_of_the_unclipped_sample():
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    model = ActorCritic(gym.spaces.Box(-1.0, 1.0, (3,), np.float32), space, hidden=(8,))
    obs = torch.zeros(2, 3)
    actions = torch.tensor([[3.0], [0.2]])  # the first lies far outside the Box
    log_prob, entropy = model.log_prob_and_entropy(obs, actions)
    mean = model.distribution(obs)
    assert torch.allclose(log_prob, gaussian_log_prob(actions, mean, model.head.log_std))
    assert log_prob[0] < log_prob[1]  # a clipped sample (1.0) would have been much more likely
    assert np.allclose(model.env_action(actions), [[1.0], [0.2]])
    assert torch.allclose(entropy, gaussian_entropy(model.head.log_std).expand(2))


def test_actor_critic_shapes_and_deterministic_actions():
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    discrete = ActorCritic(obs_space, gym.spaces.Discrete(3), hidden=(16, 16))
    obs = torch.randn(5, 4)
    assert discrete.act(obs).shape == (5,) and discrete.value(obs).shape == (5,)
    assert torch.equal(discrete.deterministic_action(obs), discrete.distribution(obs).argmax(-1))
    assert discrete.env_action(discrete.act(obs)).dtype == np.int64
    continuous = ActorCritic(obs_space, gym.spaces.Box(-2.0, 2.0, (2,), np.float32), init_log_std=-0.5)
    assert continuous.act(obs).shape == (5, 2)
    assert torch.equal(continuous.deterministic_action(obs), continuous.distribution(obs))
    assert torch.allclose(continuous.head.log_std, torch.full((2,), -0.5))
    # separate networks: the critic shares no parameter with the actor
    actor_ids = {id(p) for p in continuous.actor_body.parameters()} | {id(p) for p in continuous.head.parameters()}
    assert not actor_ids & {id(p) for p in continuous.critic.parameters()}


def test_discrete_observations_are_one_hot_encoded():
    model = ActorCritic(gym.spaces.Discrete(6), gym.spaces.Discrete(2), hidden=(8,))
    assert model.act(torch.tensor([0, 5, 3])).shape == (3,)


def test_running_normalizer_matches_numpy_over_several_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)).astype(np.float32) for n in (5, 17, 40)]
    normalizer = RunningNormalizer((3,))
    for batch in batches:
        normalizer.update(torch.from_numpy(batch))
    everything = np.concatenate(batches)
    assert np.allclose(normalizer.mean.numpy(), everything.mean(0), atol=1e-6)
    assert np.allclose(normalizer.var.numpy(), everything.var(0), atol=1e-5)
    scaled = normalizer(torch.from_numpy(everything)).numpy()
    assert np.allclose(scaled.mean(0), 0.0, atol=1e-5) and np.allclose(scaled.std(0), 1.0, atol=1e-4)
    state = normalizer.state_dict()  # the statistics travel in the checkpoint
    assert {"mean", "var", "count"} <= set(state)


@pytest.mark.parametrize(("obs_space", "action_space", "named"), [
    (gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
    (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2, 2)), "Box"),
    (gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (3,))}), gym.spaces.Discrete(2), "Dict"),
    (gym.spaces.Tuple((gym.spaces.Discrete(2),)), gym.spaces.Discrete(2), "Tuple"),
])
def test_unsupported_spaces_are_named_in_the_error(obs_space, action_space, named):
    with pytest.raises(ValueError, match=named):
        check_spaces(obs_space, action_space)


def test_observation_normalization_needs_vector_observations():
    with pytest.raises(ValueError, match="normalize_obs"):
        ActorCritic(gym.spaces.Discrete(4), gym.spaces.Discrete(2), normalize_obs=True)


@pytest.mark.parametrize("text", ["", "64,", "a,b", "64,0", "-3"])
def test_bad_hidden_sizes_are_rejected(text):
    with pytest.raises(ValueError, match="hidden_sizes"):
        parse_hidden_sizes(text)


def test_every_fires_once_per_interval_crossed():
    every = Every(100, start_step=250)
    assert [step for step in (260, 299, 300, 320, 399, 480, 510) if every.due(step)] == [300, 480, 510]
    never = Every(0)
    assert not any(never.due(step) for step in (1, 10**9))
