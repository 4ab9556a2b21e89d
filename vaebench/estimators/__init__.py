"""Gradient-estimator studies: exact toys, the VAE's encoder gradient, minibatches.

- ``gamma_toy``: the exactly solvable Gamma model of `001` part 4;
- ``gaussian_toy``: E_{N(mu, sigma)}[f] for the test functions of Mohamed et al. (2020);
- ``vae_gradients``: score-function vs reparameterization (L^A, L^B) on a VAE's encoder;
- ``minibatch``: the N/M-scaled minibatch gradient of a logistic regression;
- ``measure_valued``: coupled weak-derivative (measure-valued) estimators for the Gaussian;
- ``gaussian_exact``: exact single-sample variances on the review grids of Mohamed et al.;
- ``logistic_regression``: Bayesian logistic regression trained with each estimator (their §8.3);
- ``common``: baselines, replicate summaries, per-unit seeds.
"""
