"""The skew-geometric Jensen-Shannon VAE (Deasy et al. 2020): recon + GJS_a(q || N(0, I)), or its
dual, in place of the KL. z and the divergence come from one fused ``vaebench.ops.reparam_gjs``
call (the same noise as ``reparam_kl``'s, so a GJS unit and a KL unit of one seed see the same
eps); the logged ``kl`` stays the true KL(q || N(0, I)), the rate the model pays, so the two
objectives compare on one scale. ``div`` is the GJS term itself. At alpha -> 0 the plain GJS is
the KL VAE (closed forms and limits: ``docs/gjs.md``)."""
from __future__ import annotations

from typing import ClassVar

from vaebench.methods.base import Method
from vaebench.models import Pass, bernoulli_log_likelihood, philox_eps
from vaebench.ops import kl_normal, reparam_gjs, reparam_gjs_eager


class GJSVAE(Method):
    name = "gjs_vae"
    param = "alpha"
    study_values = (0.1, 0.3, 0.5, 0.7, 0.9)  # the alphas the GJS authors' dSprites notebooks sweep
    log_names = ("div",)
    dual: ClassVar[bool] = False
    high = 1.0

    def forward(self, model, x, step, *, impl, seed, offset) -> Pass:
        mu, logvar = model.encode(x)
        if impl == "fused":
            z, div = reparam_gjs(mu, logvar, self.value, dual=self.dual, seed=seed, offset=offset)
        else:
            z, div = reparam_gjs_eager(mu, logvar, self.value, philox_eps(mu, seed=seed, offset=offset), dual=self.dual)
        recon = -bernoulli_log_likelihood(model.decode(z), x)
        return Pass(mu, logvar, z, kl_normal(mu.detach(), logvar.detach()), recon, div)

    def loss(self, p: Pass, step: int):
        return (p.recon + p.div).mean(), {"div": p.div.detach().mean()}


class GJSVAEDual(GJSVAE):
    """The dual divergence: (1 - a) KL(M_a || q) + a KL(M_a || p)."""

    name = "gjs_vae_dual"
    dual = True
