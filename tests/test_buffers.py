"""The replay buffer: what goes in comes out, the ring wraps, sampling is uniform, misuse is an error."""

import numpy as np
import pytest

from agents.buffers import ReplayBuffer


def transitions(n: int, start: int = 0, obs_shape: tuple[int, ...] = (3,), dtype: type = np.float32):
    """``n`` distinguishable transitions: transition ``i`` carries ``i`` in every field."""
    ids = np.arange(start, start + n)
    obs = np.broadcast_to(ids.reshape(-1, *([1] * len(obs_shape))), (n, *obs_shape)).astype(dtype)
    return obs, obs + 1, ids % 5, ids.astype(np.float64) * 0.5, ids % 2 == 0


def stored_ids(buffer: ReplayBuffer) -> list[int]:
    return sorted(int(a) for a in buffer.obs[: len(buffer)].reshape(len(buffer), -1)[:, 0])


def sample_many(buffer: ReplayBuffer, draws: int):
    """Many draws, in batches no larger than what is stored (a larger batch is an error)."""
    batches = [buffer.sample(len(buffer)) for _ in range(draws // len(buffer))]
    return type(batches[0])(*(None if column[0] is None else np.concatenate(column)  # targets: not sampled
                              for column in zip(*batches, strict=True)))


def test_the_buffer_returns_exactly_what_was_stored():
    buffer = ReplayBuffer(10, obs_shape=(3,), obs_dtype=np.float32, seed=0)
    obs, next_obs, actions, rewards, dones = transitions(4)
    buffer.add(obs, next_obs, actions, rewards, dones)
    batch = sample_many(buffer, 200)
    ids = batch.obs[:, 0].astype(int)
    np.testing.assert_array_equal(batch.obs, obs[ids])
    np.testing.assert_array_equal(batch.next_obs, next_obs[ids])
    np.testing.assert_array_equal(batch.actions, actions[ids])
    np.testing.assert_array_equal(batch.rewards, rewards[ids].astype(np.float32))
    np.testing.assert_array_equal(batch.dones, dones[ids].astype(np.float32))
    assert set(ids) == {0, 1, 2, 3}
    assert batch.obs.dtype == np.float32 and batch.actions.dtype == np.int64
    assert batch.rewards.dtype == np.float32 and batch.dones.dtype == np.float32
    assert buffer.sample(4).obs.shape == (4, 3) and buffer.sample(4).rewards.shape == (4,)


def test_uint8_images_stay_uint8_and_keep_their_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    buffer = ReplayBuffer(4, obs_shape=(8, 8, 3), obs_dtype=np.uint8, seed=0)
    buffer.add(images, images[::-1], np.array([0, 1]), np.array([1.0, 2.0]), np.array([False, True]))
    np.testing.assert_array_equal(buffer.obs[:2], images)
    np.testing.assert_array_equal(buffer.next_obs[:2], images[::-1])
    batch = sample_many(buffer, 16)
    assert batch.obs.dtype == np.uint8 and batch.next_obs.dtype == np.uint8
    for obs, next_obs, action in zip(batch.obs, batch.next_obs, batch.actions, strict=True):
        np.testing.assert_array_equal(obs, images[action])
        np.testing.assert_array_equal(next_obs, images[1 - action])


def test_the_ring_overwrites_the_oldest_and_caps_the_size():
    buffer = ReplayBuffer(5, obs_shape=(3,), seed=0)
    for start in range(0, 7):  # one transition at a time: 0..6, so 0 and 1 are overwritten
        buffer.add(*transitions(1, start))
    assert len(buffer) == 5 and buffer.pos == 2
    assert stored_ids(buffer) == [2, 3, 4, 5, 6]
    buffer.add(*transitions(4, 7))  # a batch that crosses the end of the arrays: 7, 8 at the end, 9, 10 at the start
    assert len(buffer) == 5 and buffer.pos == 1
    assert stored_ids(buffer) == [6, 7, 8, 9, 10]
    sampled = set(sample_many(buffer, 500).obs[:, 0].astype(int))
    assert sampled == {6, 7, 8, 9, 10}
    for row in range(5):  # every row still holds one consistent transition
        i = int(buffer.obs[row, 0])
        assert buffer.next_obs[row, 0] == i + 1 and buffer.actions[row] == i % 5 and buffer.rewards[row] == i * 0.5


def test_sampling_is_uniform_over_the_stored_transitions():
    n, draws = 20, 200_000
    buffer = ReplayBuffer(32, obs_shape=(3,), seed=123)
    buffer.add(*transitions(n))
    counts = np.bincount(sample_many(buffer, draws).obs[:, 0].astype(int), minlength=n)
    expected = draws / n
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    # 19 degrees of freedom: the 99.9% quantile of chi^2 is 43.8.
    assert chi_square < 43.8, (chi_square, counts)
    assert np.abs(counts / expected - 1).max() < 0.05


def test_several_minibatches_in_one_draw_are_stacked_and_uniform():
    buffer = ReplayBuffer(32, obs_shape=(3,), seed=5)
    buffer.add(*transitions(8))
    batch = buffer.sample(4, n_batches=5_000)
    assert batch.obs.shape == (5_000, 4, 3) and batch.actions.shape == (5_000, 4) and batch.dones.shape == (5_000, 4)
    ids = batch.obs[..., 0].astype(int)
    np.testing.assert_array_equal(batch.next_obs[..., 0], ids + 1)  # rows still belong together
    counts = np.bincount(ids.ravel(), minlength=8)
    assert np.abs(counts / (20_000 / 8) - 1).max() < 0.05
    with pytest.raises(ValueError, match="n_batches"):
        buffer.sample(4, n_batches=0)
    with pytest.raises(ValueError, match="cannot sample 9"):
        buffer.sample(9, n_batches=2)


def test_the_same_seed_samples_the_same_batches():
    a, b = ReplayBuffer(16, (3,), seed=7), ReplayBuffer(16, (3,), seed=7)
    for buffer in (a, b):
        buffer.add(*transitions(10))
    np.testing.assert_array_equal(a.sample(8).obs, b.sample(8).obs)
    np.testing.assert_array_equal(a.sample(8).obs, b.sample(8).obs)


def test_sampling_more_than_stored_or_from_an_empty_buffer_is_an_error():
    buffer = ReplayBuffer(10, obs_shape=(3,), seed=0)
    with pytest.raises(ValueError, match="holding 0"):
        buffer.sample(1)
    buffer.add(*transitions(3))
    with pytest.raises(ValueError, match="cannot sample 4 transitions from a replay buffer holding 3"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="batch_size"):
        buffer.sample(0)
    assert len(buffer.sample(3).obs) == 3


def test_bad_shapes_and_capacities_are_errors():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, obs_shape=(3,))
    buffer = ReplayBuffer(4, obs_shape=(3,))
    with pytest.raises(ValueError, match="do not fit"):
        buffer.add(*transitions(2, obs_shape=(4,)))
    with pytest.raises(ValueError, match="at once"):
        buffer.add(*transitions(5))
