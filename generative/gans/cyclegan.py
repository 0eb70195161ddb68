"""CycleGAN (Zhu et al. 2017): translation between two domains from unpaired examples.

Two generators, ``F: A -> B`` (``to_digits``) and ``G: B -> A`` (``to_task``), two discriminators ``D_A``, ``D_B``, and

    L = L_GAN(F, D_B) + L_GAN(G, D_A)
        + lambda_cyc (E_a |G(F(a)) - a|_1 + E_b |F(G(b)) - b|_1)          cycle consistency
        + lambda_id  (E_b |F(b) - b|_1 + E_a |G(a) - a|_1)               identity (keeps what needs no change)

Without pairs, the adversarial terms only ask each translation to look like its target domain; the cycle terms
ask it to keep enough of the input to go back, which ties every output to its own input.

Here ``A`` is a task domain of the digits (``domains.py``: edge maps, thick strokes, rotations) and ``B`` the
digits. Each training batch of digits is split in two: the task images of its first half form ``A``, the second
half's digits ``B``, so no pair is ever seen (``mpenv-gen train cyclegan --data digits``).

    model = CycleGAN((1, 8, 8), task="edges"); fit_gan(model, digits); x = model.translate(edges)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.common import check_input
from generative.gans.domains import TASKS, apply_task
from generative.gans.gan import GAN
from generative.gans.losses import generator_loss
from generative.gans.networks import PatchDiscriminator, UNetGenerator

__all__ = ["CycleGAN"]


class CycleGAN(GAN):
    """Unpaired translation between a digit ``task`` domain (``A``) and the digits (``B``).

    Args:
        input_shape: ``(C, H, W)`` of the digits, sides multiples of 4.
        task: ``"edges"``, ``"thick"`` or ``"rotated"`` (``domains.py``).
        channels: base channel count of the U-Nets and PatchGANs.
        cycle_weight: ``lambda_cyc``.
        identity_weight: ``lambda_id``.
        loss: the adversarial loss (``losses.py``).
    """

    translates = True
    """``mpenv-gen`` samples and evaluates translations of the test digits' task images."""

    def __init__(self, input_shape: Sequence[int], task: str = "edges", channels: int = 32, cycle_weight: float = 10.0,
                 identity_weight: float = 5.0, loss: str = "non-saturating") -> None:  # fmt: skip
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3:
            raise ValueError(f"CycleGAN: input_shape must be (C, H, W), got {shape}")
        if task not in TASKS:
            raise ValueError(f"unknown translation task {task!r}; choose one of {', '.join(TASKS)}")
        super().__init__(shape, channels=channels, loss=loss)
        c = shape[0]
        self.task, self.cycle_weight, self.identity_weight = task, cycle_weight, identity_weight
        self.generator = nn.ModuleDict({"to_digits": UNetGenerator(c, c, channels),
                                        "to_task": UNetGenerator(c, c, channels)})  # fmt: skip
        self.discriminator = nn.ModuleDict({"digits": PatchDiscriminator(c, channels),
                                            "task": PatchDiscriminator(c, channels)})  # fmt: skip

    def domains(self, real: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)``: the task images of the batch's first half, the digits of its second half (unpaired)."""
        check_input(real, self.input_shape, model=type(self).__name__)
        if len(real) < 2:
            raise ValueError(f"{type(self).__name__}: a batch needs at least 2 digits (one per domain)")
        real = real.to(self._anchor)
        half = len(real) // 2
        return apply_task(self.task, real[:half]), real[half : 2 * half]

    def source_of(self, digits: Tensor) -> Tensor:
        """The task image of each digit (domain ``A``)."""
        return apply_task(self.task, digits)

    @torch.no_grad()
    def translate(self, source: Tensor) -> Tensor:
        """Task images (domain ``A``) -> digits (``B``)."""
        return self._run("to_digits", source)

    @torch.no_grad()
    def translate_back(self, digits: Tensor) -> Tensor:
        """Digits (``B``) -> task images (``A``)."""
        return self._run("to_task", digits)

    def _run(self, name: str, x: Tensor) -> Tensor:
        check_input(x, self.input_shape, model=type(self).__name__)
        net = self.generator[name]
        was_training = net.training
        net.eval()
        out = net(x.to(self._anchor))
        net.train(was_training)
        return out

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} translates images: translate(source), not sample(n)")

    # ------------------------------------------------------------------ the losses of one step
    def fake_batch(self, real: Tensor) -> Tensor:
        """``[G(b); F(a)]``: fake task images, then fake digits."""
        a, b = self.domains(real)
        return torch.cat([self.generator["to_task"](b), self.generator["to_digits"](a)])

    def discriminator_loss(self, real: Tensor, fake: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        a, b = self.domains(real)
        if fake is None:
            with torch.no_grad():
                fake = self.fake_batch(real)
        fake_a, fake_b = fake.split([len(a), len(b)])
        d = self.discriminator
        real_logits = torch.cat([d["task"](a), d["digits"](b)])
        return self.judge(real_logits, torch.cat([d["task"](fake_a), d["digits"](fake_b)]))

    def generator_loss(self, n: int, real: Tensor | None = None, fake: Tensor | None = None) -> Tensor:
        if real is None:
            raise ValueError(f"{type(self).__name__}: the generator's loss needs the real batch")
        a, b = self.domains(real)
        fake = self.fake_batch(real) if fake is None else fake
        fake_a, fake_b = fake.split([len(a), len(b)])
        g, d = self.generator, self.discriminator
        adversarial = generator_loss(self.loss_kind, torch.cat([d["task"](fake_a), d["digits"](fake_b)]))
        cycle = F.l1_loss(g["to_task"](fake_b), a) + F.l1_loss(g["to_digits"](fake_a), b)
        identity = F.l1_loss(g["to_digits"](b), b) + F.l1_loss(g["to_task"](a), a)
        return adversarial + self.cycle_weight * cycle + self.identity_weight * identity

    @torch.no_grad()
    def cycle_error(self, digits: Tensor) -> tuple[float, float]:
        """Mean absolute error per pixel of the two round trips: ``A -> B -> A`` on the task images of ``digits``,
        ``B -> A -> B`` on the digits themselves."""
        b = digits.to(self._anchor)
        a = apply_task(self.task, b)
        return (float((self.translate_back(self.translate(a)) - a).abs().mean()),
                float((self.translate(self.translate_back(b)) - b).abs().mean()))  # fmt: skip
