"""mpenv.device: device strings, the MPENV_DEVICE override, seeding and moving batches."""

import random
from typing import NamedTuple

import numpy as np
import pytest
import torch

from mpenv.device import get_device, module_device, seed_everything, to_device, torch_threads


def test_cpu_and_auto_resolve_on_a_cpu_machine(monkeypatch):
    monkeypatch.delenv("MPENV_DEVICE", raising=False)
    assert get_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert get_device("auto").type == expected
    assert get_device(None).type == expected
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_env_var_replaces_auto_but_not_an_explicit_request(monkeypatch):
    monkeypatch.setenv("MPENV_DEVICE", "cpu")
    assert get_device("auto") == torch.device("cpu")
    monkeypatch.setenv("MPENV_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"'tpu' \(from \$MPENV_DEVICE\)"):
        get_device("auto")
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0:1", "", "CUDA 1"])
def test_malformed_device_strings_are_rejected(bad, monkeypatch):
    monkeypatch.delenv("MPENV_DEVICE", raising=False)
    with pytest.raises(ValueError, match="unknown device"):
        get_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_unavailable_cuda_is_a_clear_error(spec):
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        get_device(spec)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error on a machine without MPS")
def test_unavailable_mps_is_a_clear_error():
    with pytest.raises(RuntimeError, match="MPS is not available"):
        get_device("mps")


def draw_everything() -> tuple[float, float, torch.Tensor]:
    legacy_numpy = float(np.random.rand())  # noqa: NPY002  (the global state seed_everything must cover)
    return random.random(), legacy_numpy, torch.rand(3)


def test_seed_everything_repeats_python_numpy_and_torch_streams():
    rng_a = seed_everything(7)
    first = draw_everything()
    a_draw = rng_a.random()
    rng_b = seed_everything(7)
    second = draw_everything()
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2])
    assert a_draw == rng_b.random()
    seed_everything(8)
    assert draw_everything()[0] != first[0]


def test_deterministic_mode_switches_torch_to_deterministic_kernels():
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)


class Pair(NamedTuple):
    obs: object
    act: object


def test_to_device_moves_nested_batches_and_keeps_their_structure():
    batch = {"obs": np.arange(6, dtype=np.float64).reshape(2, 3), "pair": Pair(torch.ones(2), [np.zeros(1)]),
             "name": "cartpole", "n": 3}
    moved = to_device(batch, "cpu", dtype=torch.float32)
    assert moved["obs"].dtype == torch.float32 and moved["obs"].device.type == "cpu"
    np.testing.assert_array_equal(moved["obs"].numpy(), batch["obs"])
    assert isinstance(moved["pair"], Pair) and isinstance(moved["pair"].act, list)
    assert moved["name"] == "cartpole" and moved["n"] == 3
    ints = to_device(np.arange(3), "cpu", dtype=torch.float32)
    assert ints.dtype == torch.int64  # dtype only applies to floating data


def test_module_device():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")


class _Counter(torch.nn.Module):
    """A linear layer plus an integer buffer: ``dtype`` must cast the former and leave the latter alone."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("steps", torch.tensor(7, dtype=torch.int64))
        self.register_buffer("scale", torch.full((2,), 0.5))


def test_to_device_moves_and_casts_modules():
    torch.manual_seed(0)
    module = _Counter()
    weight = module.linear.weight.detach().clone()
    assert module.linear.weight.dtype == torch.float32
    moved = to_device(module, "cpu", dtype=torch.float64)
    assert moved is module  # nn.Module.to works in place and returns the module
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in moved.parameters())
    assert moved.scale.dtype == torch.float64
    assert moved.steps.dtype == torch.int64 and int(moved.steps) == 7  # non-floating buffers are not cast
    torch.testing.assert_close(moved.linear.weight, weight.double(), rtol=0.0, atol=0.0)
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(moved.linear(x), x @ weight.double().T + moved.linear.bias, rtol=0, atol=1e-15)
    # Without dtype a module only moves; inside a nesting it is handled like any other leaf.
    assert to_device(torch.nn.Linear(2, 2), torch.device("cpu")).weight.dtype == torch.float32
    nested = to_device({"net": torch.nn.Linear(2, 2), "obs": [torch.zeros(2, dtype=torch.float32)]}, "cpu",
                       dtype=torch.float64)  # fmt: skip
    assert nested["net"].weight.dtype == torch.float64 and nested["obs"][0].dtype == torch.float64


def test_to_device_casts_only_floating_tensors_in_nested_dicts():
    batch = {"obs": {"image": torch.zeros(2, 3), "mask": torch.ones(2, dtype=torch.bool)},
             "act": torch.arange(2), "rew": (torch.ones(2, dtype=torch.float16),)}  # fmt: skip
    moved = to_device(batch, "cpu", dtype=torch.float64)
    assert moved["obs"]["image"].dtype == torch.float64 and moved["rew"][0].dtype == torch.float64
    assert moved["obs"]["mask"].dtype == torch.bool and moved["act"].dtype == torch.int64
    assert all(t.device.type == "cpu" for t in (moved["obs"]["image"], moved["act"]))


def test_torch_threads_sets_the_count_inside_the_block_and_restores_it() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    for unchanged in (None, 0):
        with torch_threads(unchanged):
            assert torch.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt), torch_threads(before + 2):
        raise KeyboardInterrupt  # restored on the way out of an interrupted block too
    assert torch.get_num_threads() == before
