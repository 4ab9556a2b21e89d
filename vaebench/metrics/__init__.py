"""Disentanglement metrics: one file per metric, each a pure function of its inputs.

Array metrics take codes ``[N, D]`` and factor classes ``[N, K]``; the interventional ones
(``beta_vae_score``, ``factor_vae_score``) take a function images -> codes (or a
``Representation``) and the dataset. ``score_suite`` runs them all on one representation."""
from vaebench.metrics.beta_vae_score import BetaVAEScoreResult, beta_vae_score
from vaebench.metrics.dci import DCIResult, dci
from vaebench.metrics.dcimig import DCIMIGResult, dcimig
from vaebench.metrics.factor_vae_score import FactorVAEScoreResult, factor_vae_score
from vaebench.metrics.irs import IRSResult, irs
from vaebench.metrics.jemmig import JEMMIGResult, jemmig
from vaebench.metrics.mig import MIGResult, mig, mig_reference, mig_vectorized
from vaebench.metrics.mig_sup import MIGSupResult, mig_sup
from vaebench.metrics.modularity_explicitness import ModularityExplicitnessResult, modularity_explicitness
from vaebench.metrics.pca_shape import pca_shape_knn
from vaebench.metrics.mutual_info import BinnedInformation, binned_information, discretize
from vaebench.metrics.representation import Representation, model_encoder
from vaebench.metrics.sap import SAPResult, sap
from vaebench.metrics.suite import HEADLINE, METRICS, SuiteSizes, parse_metrics, score_suite
from vaebench.metrics.unsupervised import UnsupervisedResult, unsupervised_scores

__all__ = [
    "BetaVAEScoreResult", "HEADLINE", "BinnedInformation", "DCIMIGResult", "DCIResult", "FactorVAEScoreResult", "IRSResult",
    "JEMMIGResult", "METRICS", "MIGResult", "MIGSupResult", "ModularityExplicitnessResult", "Representation",
    "SAPResult", "SuiteSizes", "UnsupervisedResult", "beta_vae_score", "binned_information", "dci", "dcimig",
    "discretize", "factor_vae_score", "irs", "jemmig", "mig", "mig_reference", "mig_sup", "mig_vectorized",
    "model_encoder", "modularity_explicitness", "parse_metrics", "pca_shape_knn", "sap", "score_suite", "unsupervised_scores",
]
