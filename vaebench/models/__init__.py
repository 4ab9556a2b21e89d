"""VAE models: architectures, the beta-VAE loss, checkpoints (see ``vaebench.models.vae``).

Quick use::

    from vaebench.models import VAE, VAEConfig, elbo_terms, vae_pass, bernoulli_log_likelihood, load_vae
    model = VAE(arch="conv", latent_dim=10)
    mu, logvar = model.encode(x)                      # x: float [B, 1, 64, 64] in [0, 1]
    log_px_z = bernoulli_log_likelihood(model.decode(z), x)   # [B]
    terms = elbo_terms(model, x, beta=4.0, seed=s, offset=o)  # .loss, .recon, .kl, ...
    p = vae_pass(model, x, seed=s, offset=o)         # .mu, .logvar, .z, .kl, .recon: what a method's loss reads
    model = load_vae("runs/.../beta_vae/checkpoints/beta4_seed0_end.pt")
"""
from vaebench.models.vae import (
    ARCHS,
    ENCODERS,
    IMPLS,
    VAE,
    ElboTerms,
    Pass,
    VAEConfig,
    ae_pass,
    bernoulli_log_likelihood,
    beta_vae_loss,
    checkpoint_state,
    elbo_terms,
    load_vae,
    philox_eps,
    sample_latent,
    vae_pass,
)

__all__ = [
    "ARCHS",
    "ENCODERS",
    "IMPLS",
    "VAE",
    "ElboTerms",
    "Pass",
    "VAEConfig",
    "ae_pass",
    "bernoulli_log_likelihood",
    "beta_vae_loss",
    "checkpoint_state",
    "elbo_terms",
    "load_vae",
    "philox_eps",
    "sample_latent",
    "vae_pass",
]
