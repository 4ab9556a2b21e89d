"""Disentanglement metrics."""
from vaebench.metrics.mig import MIGResult, mig, mig_reference, mig_vectorized

__all__ = ["MIGResult", "mig", "mig_reference", "mig_vectorized"]
