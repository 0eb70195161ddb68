"""StyleFlow (Abdal et al. 2021): attribute edits in a style-based generator's latent space through a conditional
normalizing flow that takes the place of the mapping network.

A conditional flow (``generative.flows.ConditionalFlow``, its couplings seeing the attributes ``a``) is fitted by
maximum likelihood to pairs ``(w, a)``: ``w = f(z)`` from the generator's mapping network, ``a`` the attributes
measured on the image ``G(w)``. It is then a map ``w = g^{-1}(u; a)`` from a Gaussian ``u`` and attributes to the
latents the generator uses, like the mapping network but controlled by ``a``. An edit keeps ``u`` (what the
attributes do not explain: the identity of the sample) and changes ``a``:

    u = g(w; a),      w' = g^{-1}(u; a'),      x' = G(w')

The attributes here are the digit's class probabilities from the digits classifier and its stroke thickness (the
mean ink of the image, in standard units of the generated set), so "thicker" and "another digit" are edits.

    style = fit_styleflow(stylegan, classifier); a = style.attributes(x, classifier)
    a_thick = a.clone(); a_thick[:, 10] += 1.5; w_thick = style.edit(w, a, a_thick)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from generative.fit import fit
from generative.flows import ConditionalFlow
from generative.gans.stylegan import StyleGAN

__all__ = ["StyleFlow", "digit_attributes", "fit_styleflow"]


@dataclass
class StyleFlow:
    """The fitted flow and the thickness standardization its attributes use."""

    flow: ConditionalFlow
    ink_mean: float
    ink_std: float

    def attributes(self, images: Tensor, classifier: torch.nn.Module) -> Tensor:
        """``[N, 11]``: the classifier's class probabilities, then the standardized mean ink."""
        return digit_attributes(images, classifier, self.ink_mean, self.ink_std)

    @torch.no_grad()
    def edit(self, w: Tensor, attributes: Tensor, target: Tensor) -> Tensor:
        """``w' = g^{-1}(g(w; a); a')``: the same ``u``, new attributes."""
        self.flow.eval()
        return self.flow.decode(self.flow.encode(w, attributes), target)


def digit_attributes(images: Tensor, classifier: torch.nn.Module, ink_mean: float, ink_std: float) -> Tensor:
    with torch.no_grad():
        probabilities = classifier(images).softmax(dim=1)
    ink = (images.flatten(1).mean(1, keepdim=True) - ink_mean) / ink_std
    return torch.cat([probabilities, ink], dim=1)


def fit_styleflow(gan: StyleGAN, classifier: torch.nn.Module, n: int = 20_000, epochs: int = 40,
                  seed: int = 0) -> StyleFlow:  # fmt: skip
    """Sample ``n`` latents, measure their images' attributes, fit the conditional flow ``p(w | a)`` (of the
    generator that ``gan.sample`` uses: the moving average of the weights when kept)."""
    generator = gan.sampling_generator.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        w = generator.map(torch.randn(n, gan.latent_dim))
        images = torch.cat([generator.synthesize(chunk[:, None].expand(-1, generator.n_styles, -1))
                            for chunk in w.split(1000)])  # fmt: skip
    ink = images.flatten(1).mean(1)
    style = StyleFlow(ConditionalFlow((w.shape[1],), n_classes=0, cond_dim=11, n_couplings=8, hidden=(128, 128)),
                      float(ink.mean()), float(ink.std()))  # fmt: skip
    a = style.attributes(images, classifier)
    split = int(0.9 * n)
    fit(style.flow, (w[:split], a[:split]), (w[split:], a[split:]), epochs=epochs, batch_size=256, patience=5,
        seed=seed)  # fmt: skip
    return style
