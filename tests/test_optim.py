"""The shared gradient step and optimizer builder against torch's own clipping and optimizers."""

import copy

import pytest
import torch
from torch import nn

from agents.optim import clip_grad_norm, gradient_step, make_optimizer
from mpenv.logger import NonFiniteLossError


def network_and_loss(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return net, net(torch.randn(16, 4, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("max_norm", [0.1, 1e6, 0.0])  # clipped, left alone, clipping off
def test_the_gradient_step_clips_the_global_norm_as_a_hand_computation_does(max_norm):
    ours, out = network_and_loss()
    reference = copy.deepcopy(ours)
    returned = gradient_step(torch.optim.SGD(ours.parameters(), lr=0.1), (out**2).sum(), max_norm, step=0)
    # By hand: g <- g min(1, c / (||g|| + 1e-6)) with ||g|| the norm of all gradients together, then
    # theta <- theta - 0.1 g.
    ref_loss = (reference(torch.randn(16, 4, generator=torch.Generator().manual_seed(0))) ** 2).sum()
    grads = torch.autograd.grad(ref_loss, list(reference.parameters()))
    norm = float(torch.sqrt(sum((g**2).sum() for g in grads)))
    scale = min(1.0, max_norm / (norm + 1e-6)) if max_norm > 0 else 1.0
    for param, ref_param, grad in zip(ours.parameters(), reference.parameters(), grads, strict=True):
        torch.testing.assert_close(param, ref_param - 0.1 * scale * grad)
    assert not returned.requires_grad and float(returned) == pytest.approx(ref_loss.item())
    assert (scale < 0.5) == (max_norm == 0.1)  # the clipped case does clip


def test_a_non_finite_loss_stops_before_the_weights_change():
    net, out = network_and_loss()
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(NonFiniteLossError, match="losses/td_loss became nan at step 7"):
        gradient_step(torch.optim.SGD(net.parameters(), lr=0.1), out.sum() * float("nan"), 1.0, 7, "losses/td_loss")
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


@pytest.mark.parametrize(("name", "eps", "reference"), [
    ("adam", 1e-5, lambda params: torch.optim.Adam(params, lr=1e-2, eps=1e-5)),
    ("adam", 1e-8, lambda params: torch.optim.Adam(params, lr=1e-2)),
    ("rmsprop", 1e-5, lambda params: torch.optim.RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-5)),
])
def test_the_optimizers_step_as_torchs_reference_ones(name, eps, reference):
    ours, _ = network_and_loss()
    theirs = copy.deepcopy(ours)
    opt_ours, opt_theirs = make_optimizer(name, ours.parameters(), 1e-2, eps=eps), reference(theirs.parameters())
    for step in range(3):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(step))
        for net, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            opt.step()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_an_unknown_optimizer_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="optimizer must be one of.*'sgd'"):
        make_optimizer("sgd", nn.Linear(2, 2).parameters(), 1e-3)


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_clip_grad_norm_equals_torchs(max_norm):
    ours, out = network_and_loss(seed=3)
    theirs = copy.deepcopy(ours)
    (out**2).sum().backward()
    (theirs(torch.randn(16, 4, generator=torch.Generator().manual_seed(3))) ** 2).sum().backward()
    clip_grad_norm(list(ours.parameters()), max_norm)
    nn.utils.clip_grad_norm_(theirs.parameters(), max_norm)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)
