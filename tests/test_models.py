"""vaebench.models: shapes, the Bernoulli likelihood and the beta-VAE loss against independent references."""
import pytest
import torch

from vaebench.models import VAE, VAEConfig, bernoulli_log_likelihood, checkpoint_state, elbo_terms, load_vae
from vaebench.ops import philox_normal


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 64, 64, generator=g) < 0.2).float()


@pytest.mark.parametrize("arch", ["conv", "mlp", "chen"])
def test_shapes(arch):
    model = VAE(arch=arch, latent_dim=7, mlp_hidden=16)
    mu, logvar = model.encode(_images(5))
    assert mu.shape == logvar.shape == (5, 7)
    assert model.decode(mu).shape == (5, 1, 64, 64)


def test_bernoulli_log_likelihood_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(4, 1, 64, 64, generator=g, dtype=torch.float64)
    x = _images(4).double()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


@pytest.mark.parametrize("impl", ["fused", "eager"])
def test_elbo_terms_match_float64_formulas(impl):
    torch.manual_seed(0)
    model = VAE(arch="mlp", latent_dim=5, mlp_hidden=32)
    x, beta, seed, offset = _images(8), 4.0, 123, 40
    terms = elbo_terms(model, x, beta, impl=impl, seed=seed, offset=offset)

    with torch.no_grad():
        mu, logvar = (t.double() for t in model.encode(x))
        eps = philox_normal((8, 5), seed, offset).double()
        z = mu + torch.exp(0.5 * logvar) * eps
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
        logits = model.decode(z.float()).double()
        recon = -torch.distributions.Bernoulli(logits=logits).log_prob(x.double()).flatten(1).sum(1)
    torch.testing.assert_close(terms.z.double(), z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(terms.kl.double(), kl, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(terms.recon.double(), recon, rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(terms.loss.double(), (recon + beta * kl).mean(), rtol=1e-5, atol=1e-2)


def test_bad_input_errors_name_the_argument():
    model = VAE(arch="mlp", latent_dim=3, mlp_hidden=8)
    with pytest.raises(ValueError, match="x must have shape"):
        model.encode(torch.zeros(2, 64, 64))
    with pytest.raises(ValueError, match="impl must be one of"):
        elbo_terms(model, _images(2), impl="cuda-magic", seed=0)
    with pytest.raises(ValueError, match="arch must be one of"):
        VAEConfig(arch="resnet")


def test_checkpoint_round_trip(tmp_path):
    model = VAE(arch="mlp", latent_dim=3, mlp_hidden=8)
    torch.save(checkpoint_state(model, step=7), tmp_path / "m.pt")
    loaded = load_vae(tmp_path / "m.pt")
    assert loaded.config == model.config
    x = _images(3)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
