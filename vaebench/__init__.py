"""vaebench: a benchmark and reproducibility suite for variational autoencoders."""
__version__ = "0.1.0"
