"""mpenv.nn.optim against torch.optim: the same iterates for 200 steps (float64, to 1e-6) on an ill-conditioned
quadratic and on a small MLP with two parameter groups; Nesterov's two forms against each other and against the
course's recursion; state dicts, zero_grad, skipped parameters, sparse gradients, bad hyperparameters; every
optimizer on the Rosenbrock function; mini-batches."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from mpenv.nn.optim import SGD, AdaGrad, Adam, AdamW, Nesterov, RMSProp, minibatches

STEPS = 200
DTYPE = torch.float64
TOL = dict(atol=1e-6, rtol=1e-6)


# --- the two problems: each makes fresh parameters (the same every time), param groups and a loss -----------------


class Quadratic:
    """``L(x) = 1/2 x^T A x - b^T x`` in 10 dimensions, eigenvalues of ``A`` from 1 to 100 in a random basis
    (condition number 100): one parameter tensor, one group."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(10, 10, generator=gen, dtype=DTYPE))
        self.a = q @ torch.diag(torch.logspace(0, 2, 10, dtype=DTYPE)) @ q.T
        self.b = torch.randn(10, generator=gen, dtype=DTYPE)
        self.x0 = torch.randn(10, generator=gen, dtype=DTYPE)
        self.params = [nn.Parameter(self.x0.clone())]

    def groups(self, lr: float) -> list[dict]:
        return [{"params": self.params, "lr": lr}]

    def loss(self) -> Tensor:
        x = self.params[0]
        return 0.5 * x @ self.a @ x - self.b @ x

    def gradient(self, x: Tensor) -> Tensor:
        return self.a @ x - self.b

    def backward(self) -> Tensor:
        """``loss().backward()`` without autograd's overhead (a third of this file's time): the gradient in closed
        form, written where ``backward`` would accumulate it."""
        x = self.params[0].detach()
        self.params[0].grad = self.gradient(x)
        return 0.5 * x @ self.a @ x - self.b @ x


class SmallMLP:
    """A 4-16-16-1 tanh MLP (six parameter tensors) regressing a fixed batch of 64 points; the first layer is one
    group at ``lr``, the other two layers a second group at ``lr / 2``."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 4, generator=gen, dtype=DTYPE)
        self.y = torch.sin(self.x.sum(1, keepdim=True))
        torch.manual_seed(2)  # nn.Linear's initialisation draws from the global generator
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)).to(DTYPE)
        self.params = list(self.net.parameters())

    def groups(self, lr: float) -> list[dict]:
        first = list(self.net[0].parameters())
        rest = list(self.net[2].parameters()) + list(self.net[4].parameters())
        return [{"params": first, "lr": lr}, {"params": rest, "lr": lr / 2}]

    def loss(self) -> Tensor:
        return (self.net(self.x) - self.y).pow(2).mean()

    def backward(self) -> Tensor:
        loss = self.loss()
        loss.backward()
        return loss


PROBLEMS = {"quadratic": Quadratic, "mlp": SmallMLP}


def flat(params: list[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def closure_of(problem, optimizer: torch.optim.Optimizer) -> Callable[[], Tensor]:
    def closure() -> Tensor:
        optimizer.zero_grad()
        return problem.backward()

    return closure


def trajectory(problem, optimizer: torch.optim.Optimizer, steps: int = STEPS) -> Tensor:
    """``[steps, n]``: all parameters, flattened, after each step (the closure form works for every optimizer)."""
    closure = closure_of(problem, optimizer)
    iterates = []
    for _ in range(steps):
        optimizer.step(closure)
        iterates.append(flat(problem.params))
    return torch.stack(iterates)


# --- 1. the same iterates as torch ----------------------------------------------------------------------------------

# name -> (learning rate, ours, torch's); each factory takes the param groups (which carry the lr)
CASES = {
    "sgd": (1e-2, lambda g: SGD(g, lr=1.0), lambda g: torch.optim.SGD(g, lr=1.0)),
    "sgd_momentum": (1e-2, lambda g: SGD(g, lr=1.0, momentum=0.9),
                     lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9)),
    "sgd_weight_decay": (1e-2, lambda g: SGD(g, lr=1.0, weight_decay=0.05),
                         lambda g: torch.optim.SGD(g, lr=1.0, weight_decay=0.05)),
    "sgd_momentum_weight_decay": (1e-2, lambda g: SGD(g, lr=1.0, momentum=0.9, weight_decay=0.05),
                                  lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9, weight_decay=0.05)),
    "nesterov_torch": (1e-2, lambda g: Nesterov(g, lr=1.0, momentum=0.9, form="torch"),
                       lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9, nesterov=True)),
    "nesterov_torch_weight_decay": (
        1e-2, lambda g: Nesterov(g, lr=1.0, momentum=0.9, weight_decay=0.05, form="torch"),
        lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9, weight_decay=0.05, nesterov=True)),
    "adagrad": (1e-1, lambda g: AdaGrad(g), lambda g: torch.optim.Adagrad(g)),
    "adagrad_weight_decay": (1e-1, lambda g: AdaGrad(g, weight_decay=0.05),
                             lambda g: torch.optim.Adagrad(g, weight_decay=0.05)),
    "rmsprop": (1e-2, lambda g: RMSProp(g), lambda g: torch.optim.RMSprop(g, centered=False)),
    "rmsprop_momentum": (1e-3, lambda g: RMSProp(g, alpha=0.9, momentum=0.9, weight_decay=0.05),
                         lambda g: torch.optim.RMSprop(g, alpha=0.9, momentum=0.9, weight_decay=0.05)),
    "adam": (1e-2, lambda g: Adam(g), lambda g: torch.optim.Adam(g)),
    "adam_weight_decay": (1e-2, lambda g: Adam(g, betas=(0.8, 0.99), weight_decay=0.05),
                          lambda g: torch.optim.Adam(g, betas=(0.8, 0.99), weight_decay=0.05)),
    "adamw": (1e-2, lambda g: AdamW(g, weight_decay=0.1), lambda g: torch.optim.AdamW(g, weight_decay=0.1)),
}  # fmt: skip


@pytest.mark.parametrize("problem_name", PROBLEMS)
@pytest.mark.parametrize("case", CASES)
def test_same_iterates_as_torch(case: str, problem_name: str) -> None:
    lr, ours, theirs = CASES[case]
    mine, reference = PROBLEMS[problem_name](), PROBLEMS[problem_name]()  # the same initial weights and data
    start = flat(mine.params)
    got = trajectory(mine, ours(mine.groups(lr)))
    expected = trajectory(reference, theirs(reference.groups(lr)))
    assert (expected[-1] - start).norm() > 1e-2 * start.norm()  # the comparison is about a trajectory that moves
    torch.testing.assert_close(got, expected, **TOL)


def test_polyak_parametrizations_part_when_lr_changes() -> None:
    """The course's velocity and torch's gradient sum give the same iterates only for a constant lr (module doc)."""
    mine, reference = Quadratic(), Quadratic()
    ours = SGD(mine.groups(1e-2), lr=1.0, momentum=0.9)
    theirs = torch.optim.SGD(reference.groups(1e-2), lr=1.0, momentum=0.9)
    trajectory(mine, ours, 20)
    trajectory(reference, theirs, 20)
    torch.testing.assert_close(mine.params[0], reference.params[0], **TOL)
    for optimizer in (ours, theirs):
        optimizer.param_groups[0]["lr"] = 1e-3
    trajectory(mine, ours, 5)
    trajectory(reference, theirs, 5)
    assert (mine.params[0] - reference.params[0]).abs().max() > 1e-3


def test_works_with_an_lr_scheduler() -> None:
    mine, reference = SmallMLP(), SmallMLP()
    ours, theirs = Adam(mine.groups(1e-2)), torch.optim.Adam(reference.groups(1e-2))
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.5) for o in (ours, theirs)]
    for _ in range(50):
        ours.step(closure_of(mine, ours))
        theirs.step(closure_of(reference, theirs))
        for scheduler in schedulers:
            scheduler.step()
    assert ours.param_groups[1]["lr"] == pytest.approx(5e-3 * 0.5**5)
    torch.testing.assert_close(flat(mine.params), flat(reference.params), **TOL)


# --- 2. Nesterov: the course's look-ahead form against torch's, and against the recursion written out ------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("problem_name", PROBLEMS)
def test_nesterov_lookahead_form_equals_torch_form(problem_name: str, weight_decay: float) -> None:
    """Look-ahead form: param = theta_t, state velocity = v_t. Torch form: param = phi_t = theta_t + mu v_t, state
    momentum_buffer = b_t = -v_t / lr. So theta_t = phi_t + mu lr b_t and v_t = -lr b_t, group by group."""
    mu, lr = 0.9, 1e-2
    course, reformulated = PROBLEMS[problem_name](), PROBLEMS[problem_name]()
    lookahead = Nesterov(course.groups(lr), lr=1.0, momentum=mu, weight_decay=weight_decay, form="lookahead")
    torch_form = Nesterov(reformulated.groups(lr), lr=1.0, momentum=mu, weight_decay=weight_decay, form="torch")
    thetas, mapped, velocities, mapped_velocities = [], [], [], []
    for _ in range(STEPS):
        lookahead.step(closure_of(course, lookahead))
        torch_form.step(closure_of(reformulated, torch_form))
        thetas.append(flat(course.params))
        velocities.append(flat([lookahead.state[p]["velocity"] for p in course.params]))
        theta, v = [], []
        for group in torch_form.param_groups:
            for phi in group["params"]:
                b = torch_form.state[phi]["momentum_buffer"]
                theta.append(phi + mu * group["lr"] * b)
                v.append(-group["lr"] * b)
        mapped.append(flat(theta))
        mapped_velocities.append(flat(v))
    torch.testing.assert_close(torch.stack(thetas), torch.stack(mapped), **TOL)
    torch.testing.assert_close(torch.stack(velocities), torch.stack(mapped_velocities), **TOL)


def test_course_recursions_written_out() -> None:
    """SGD's heavy ball and Nesterov's look-ahead form are the module docstring's recursions, run here by hand with
    the quadratic's closed-form gradient."""
    mu, lr = 0.9, 1e-2
    for optimizer_class, lookahead in ((SGD, False), (Nesterov, True)):
        problem = Quadratic()
        optimizer = optimizer_class(problem.params, lr=lr, momentum=mu)
        theta, v = problem.x0.clone(), torch.zeros_like(problem.x0)
        for _ in range(STEPS):
            v = mu * v - lr * problem.gradient(theta + mu * v if lookahead else theta)
            theta = theta + v
            optimizer.step(closure_of(problem, optimizer))
            torch.testing.assert_close(problem.params[0].detach(), theta, **TOL)


def test_nesterov_lookahead_needs_a_closure_and_returns_the_lookahead_loss() -> None:
    problem = Quadratic()
    optimizer = Nesterov(problem.params, lr=1e-2)
    with pytest.raises(RuntimeError, match="closure"):
        optimizer.step()
    optimizer.step(closure_of(problem, optimizer))
    theta = problem.params[0].detach().clone()
    phi = theta + 0.9 * optimizer.state[problem.params[0]]["velocity"]
    loss = optimizer.step(closure_of(problem, optimizer))
    torch.testing.assert_close(loss.detach(), 0.5 * phi @ problem.a @ phi - problem.b @ phi)


# --- 3. training-loop plumbing ------------------------------------------------------------------------------------

# every optimizer of the module with a stable lr on the MLP; step(closure) throughout
ALL = {
    "sgd": lambda g: SGD(g, lr=0.05),
    "sgd_momentum": lambda g: SGD(g, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov_lookahead": lambda g: Nesterov(g, lr=0.05, weight_decay=1e-3),
    "nesterov_torch": lambda g: Nesterov(g, lr=0.05, form="torch"),
    "adagrad": lambda g: AdaGrad(g, lr=0.1),
    "rmsprop": lambda g: RMSProp(g, momentum=0.5),
    "adam": lambda g: Adam(g, lr=1e-2),
    "adamw": lambda g: AdamW(g, lr=1e-2),
}


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_resumes_the_trajectory(name: str) -> None:
    problem = SmallMLP()
    optimizer = ALL[name](problem.params)
    trajectory(problem, optimizer, 30)
    weights = copy.deepcopy(problem.net.state_dict())
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    uninterrupted = trajectory(problem, optimizer, 30)

    resumed = SmallMLP()
    resumed.net.load_state_dict(weights)
    fresh = ALL[name](resumed.params)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(trajectory(resumed, fresh, 30), uninterrupted, atol=0.0, rtol=0.0)


@pytest.mark.parametrize("name", ALL)
def test_zero_grad_and_a_parameter_without_gradient_is_skipped(name: str) -> None:
    used, unused = nn.Parameter(torch.ones(3, dtype=DTYPE)), nn.Parameter(torch.ones(2, dtype=DTYPE))
    optimizer = ALL[name]([used, unused])
    use_both = True

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = (used - 3.0).pow(2).sum() + ((unused - 3.0).pow(2).sum() if use_both else 0.0)
        loss.backward()
        return loss

    optimizer.step(closure)  # both have state now
    before, state_before = unused.detach().clone(), copy.deepcopy(optimizer.state[unused])
    use_both = False
    for _ in range(3):
        optimizer.step(closure)
    assert unused.grad is None
    torch.testing.assert_close(unused.detach(), before, atol=0.0, rtol=0.0)
    for key, value in state_before.items():
        assert torch.equal(torch.as_tensor(optimizer.state[unused][key]), torch.as_tensor(value)), key
    assert (used.detach() != 1.0).all()

    optimizer.zero_grad()
    assert used.grad is None
    closure()
    optimizer.zero_grad(set_to_none=False)
    assert torch.equal(used.grad, torch.zeros_like(used))

    never = nn.Parameter(torch.ones(2, dtype=DTYPE))  # a parameter that never gets a gradient gets no state either
    optimizer.add_param_group({"params": [never]})
    optimizer.step(closure)
    assert never not in optimizer.state
    torch.testing.assert_close(never.detach(), torch.ones(2, dtype=DTYPE), atol=0.0, rtol=0.0)


@pytest.mark.parametrize("name", ALL)
def test_sparse_gradients_are_refused(name: str) -> None:
    embedding = nn.Embedding(10, 3, sparse=True)
    optimizer = ALL[name](embedding.parameters())

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = embedding(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="sparse"):
        optimizer.step(closure)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGD(p, lr=-1e-3),
        lambda p: SGD(p, lr=1e-3, momentum=1.0),
        lambda p: SGD(p, lr=1e-3, momentum=-0.1),
        lambda p: SGD(p, lr=1e-3, weight_decay=-1.0),
        lambda p: SGD([{"params": p, "lr": -1.0}], lr=1e-3),  # a group's own hyperparameters are checked too
        lambda p: Nesterov(p, lr=1e-3, form="sutskever"),
        lambda p: Nesterov(p, lr=1e-3, momentum=1.0),
        lambda p: Nesterov(p, lr=float("nan")),
        lambda p: AdaGrad(p, eps=0.0),
        lambda p: AdaGrad(p, lr=-1.0),
        lambda p: RMSProp(p, alpha=1.0),
        lambda p: RMSProp(p, momentum=1.5),
        lambda p: RMSProp(p, eps=-1e-8),
        lambda p: Adam(p, betas=(1.0, 0.999)),
        lambda p: Adam(p, betas=(0.9, 1.0)),
        lambda p: Adam(p, betas=(-0.1, 0.999)),
        lambda p: Adam(p, eps=0.0),
        lambda p: AdamW(p, lr=-1e-3),
        lambda p: AdamW(p, weight_decay=-1e-2),
    ],
)
def test_bad_hyperparameters_raise(make: Callable) -> None:
    with pytest.raises(ValueError):
        make([nn.Parameter(torch.zeros(2))])


def test_bad_hyperparameters_in_a_later_param_group_raise() -> None:
    optimizer = Adam([nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="betas"):
        optimizer.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "betas": (0.9, 1.0)})
    assert len(optimizer.param_groups) == 1


# --- 4. the Rosenbrock function -----------------------------------------------------------------------------------


def rosenbrock(xy: Tensor) -> Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def rosenbrock_gradient(xy: Tensor) -> Tensor:
    x, y = xy
    return torch.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


def test_rosenbrock_gradient() -> None:
    xy = torch.tensor([-1.5, 2.0], dtype=DTYPE, requires_grad=True)
    rosenbrock(xy).backward()
    torch.testing.assert_close(rosenbrock_gradient(xy.detach()), xy.grad)


# name -> (optimizer, steps, bar): from (-1.5, 2), where f = 12.5 (the minimum is f = 0 at (1, 1)); the comment is
# the measured f after the steps (float64, deterministic), each bar about twice it. The lrs were picked on a short
# grid per optimizer (SGD's is near its stability limit: the Hessian's largest eigenvalue is about 1900 at the start).
ROSENBROCK = {
    "sgd": (lambda p: SGD(p, lr=1e-3), 2000, 0.4),  # 0.195
    "sgd_momentum": (lambda p: SGD(p, lr=2e-4, momentum=0.9), 2000, 0.04),  # 0.0161
    "nesterov": (lambda p: Nesterov(p, lr=2e-4, momentum=0.9), 2000, 0.04),  # 0.0164
    "nesterov_torch": (lambda p: Nesterov(p, lr=2e-4, momentum=0.9, form="torch"), 2000, 0.04),  # 0.0164 (f at phi_t)
    "adagrad": (lambda p: AdaGrad(p, lr=0.5), 2000, 0.3),  # 0.137
    "rmsprop": (lambda p: RMSProp(p, lr=3e-3), 2000, 0.02),  # 0.00885
    "adam": (lambda p: Adam(p, lr=2e-2), 2000, 1e-4),  # 2.2e-5
    "adamw": (lambda p: AdamW(p, lr=2e-2, weight_decay=1e-3), 2000, 1.5e-4),  # 6.1e-5
}


@pytest.mark.parametrize("name", ROSENBROCK)
def test_rosenbrock_decreases(name: str) -> None:
    make, steps, bar = ROSENBROCK[name]
    xy = nn.Parameter(torch.tensor([-1.5, 2.0], dtype=DTYPE))
    optimizer = make([xy])

    def closure() -> Tensor:  # backward in closed form: 16,000 autograd passes would take most of this file's time
        optimizer.zero_grad()
        xy.grad = rosenbrock_gradient(xy.detach())
        return rosenbrock(xy.detach())

    for _ in range(steps):
        optimizer.step(closure)
    assert rosenbrock(xy.detach()) < bar


# --- 5. mini-batches ----------------------------------------------------------------------------------------------


def test_minibatches_cover_every_example_once_per_epoch() -> None:
    gen = torch.Generator().manual_seed(0)
    epochs = [list(minibatches(10, 3, gen)) for _ in range(2)]
    for batches in epochs:
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert torch.equal(torch.cat(batches).sort().values, torch.arange(10))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))  # a fresh shuffle each epoch
    again = list(minibatches(10, 3, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(again, epochs[0], strict=True))  # the generator fixes the order
    assert [len(b) for b in minibatches(8, 4, gen)] == [4, 4]
    with pytest.raises(ValueError):
        list(minibatches(10, 0, gen))


def test_minibatch_sgd_fits_a_linear_regression() -> None:
    """Mini-batch SGD as the course runs it: a shuffle per epoch, one step per batch on the batch's mean loss."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=gen, dtype=DTYPE)
    w_true = torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)
    y = x @ w_true + 0.01 * torch.randn(200, generator=gen, dtype=DTYPE)
    w = nn.Parameter(torch.zeros(3, dtype=DTYPE))
    optimizer = SGD([w], lr=0.1)
    for _ in range(20):
        for idx in minibatches(len(x), 16, gen):
            optimizer.zero_grad()
            (x[idx] @ w - y[idx]).pow(2).mean().backward()
            optimizer.step()
    torch.testing.assert_close(w.detach(), w_true, atol=1e-2, rtol=0.0)
