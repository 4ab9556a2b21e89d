"""VAE models: architectures, the beta-VAE loss, checkpoints (see ``vaebench.models.vae``).

Quick use::

    from vaebench.models import VAE, VAEConfig, elbo_terms, bernoulli_log_likelihood, load_vae
    model = VAE(arch="conv", latent_dim=10)
    mu, logvar = model.encode(x)                      # x: float [B, 1, 64, 64] in [0, 1]
    log_px_z = bernoulli_log_likelihood(model.decode(z), x)   # [B]
    terms = elbo_terms(model, x, beta=4.0, seed=s, offset=o)  # .loss, .recon, .kl, ...
    model = load_vae("runs/.../beta_vae/checkpoints/beta4_seed0_end.pt")
"""
from vaebench.models.vae import (
    ARCHS,
    IMPLS,
    VAE,
    ElboTerms,
    VAEConfig,
    bernoulli_log_likelihood,
    checkpoint_state,
    elbo_terms,
    load_vae,
    sample_latent,
)

__all__ = [
    "ARCHS",
    "IMPLS",
    "VAE",
    "ElboTerms",
    "VAEConfig",
    "bernoulli_log_likelihood",
    "checkpoint_state",
    "elbo_terms",
    "load_vae",
    "sample_latent",
]
