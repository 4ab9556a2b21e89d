"""The whole metric suite on one representation, at disentanglement_lib's study sizes by default.

What makes it fast here (measured on a 2-core CPU, see the README):
- every image is encoded once for all metrics (``Representation``): the study's draws touch about
  2.9 million images, of which about 720,000 are distinct;
- the metrics defined on i.i.d. points (DCI, SAP, modularity and explicitness, the unsupervised
  scores, IRS, MIG and its family) share one draw of train and test points, as their definitions
  allow (the reference draws each anew);
- their independent classifier fits (one per factor, or per factor and code) run ``n_jobs`` at a
  time in worker processes, largest first.
The classifiers themselves are scikit-learn's, with the reference's settings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace

import numpy as np

from vaebench.metrics.beta_vae_score import beta_vae_score
from vaebench.metrics.dci import dci
from vaebench.metrics.dcimig import dcimig
from vaebench.metrics.factor_vae_score import factor_vae_score
from vaebench.metrics.irs import irs
from vaebench.metrics.jemmig import jemmig
from vaebench.metrics.mig import mig
from vaebench.metrics.mig_sup import mig_sup
from vaebench.metrics.modularity_explicitness import modularity_explicitness
from vaebench.metrics.pca_shape import pca_shape_knn
from vaebench.metrics.representation import Representation
from vaebench.metrics.sampling import sample_indices, varying_factors
from vaebench.metrics.sap import sap
from vaebench.metrics.unsupervised import unsupervised_scores

METRICS = ("mig", "beta_vae", "factor_vae", "dci", "sap", "modularity_explicitness", "unsupervised", "irs",
           "mig_sup", "dcimig", "jemmig", "pca_shape")
# Asked for by name only, not part of "all": Chen et al.'s MIG needs the encoder's full posteriors
# over the whole grid and costs about twice the rest of the suite (``vaebench.experiments.scoring``).
OPTIONAL = ("mig_chen",)

# One headline column per metric (what tables and figures show), with a short label.
HEADLINE = {
    "mig": "MIG", "beta_vae_eval_accuracy": "BetaVAE score", "factor_vae_eval_accuracy": "FactorVAE score",
    "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
    "dci_informativeness_test": "DCI informativeness", "sap": "SAP", "modularity": "modularity",
    "explicitness_test": "explicitness", "irs": "IRS", "gaussian_total_correlation": "Gaussian TC",
    "gaussian_wasserstein_correlation_norm": "Wasserstein corr. (norm.)", "mutual_info_score": "mean pairwise MI",
    "mig_sup": "MIG-sup", "dcimig": "DCIMIG", "jemmig": "JEMMIG", "pca_shape_knn_accuracy": "shape k-NN on PCA",
    "mig_chen": "MIG (Chen et al.)",
}
# The headline columns where a lower value is the better one: the unsupervised scores measure how
# far the code is from factorised, so a disentangled code scores near zero.
LOWER_IS_BETTER = frozenset({"gaussian_total_correlation", "gaussian_wasserstein_correlation_norm",
                             "mutual_info_score"})


@dataclass(frozen=True)
class SuiteSizes:
    """Sample sizes; the defaults are disentanglement_lib's ``unsupervised_study_v1`` configs."""

    batch_size: int = 64  # images per BetaVAE point and per FactorVAE vote
    beta_vae_train: int = 10_000
    beta_vae_eval: int = 5_000
    factor_vae_variance: int = 10_000
    factor_vae_train: int = 10_000
    factor_vae_eval: int = 5_000
    iid_train: int = 10_000  # the i.i.d. points of DCI, SAP, modularity, explicitness, unsupervised, IRS, MIG
    iid_test: int = 5_000
    num_bins: int = 20
    diff_quantile: float = 0.99  # IRS
    pca_points: int = 5_000  # the document's PCA figure: the first of the i.i.d. train points

    def scaled(self, fraction: float) -> "SuiteSizes":
        """Every point count times ``fraction`` (for quick runs; at least 64 each)."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"SuiteSizes.scaled: fraction must lie in (0, 1], got {fraction}")
        counts = {f.name: max(64, round(getattr(self, f.name) * fraction)) for f in fields(self)
                  if f.name not in ("batch_size", "num_bins", "diff_quantile")}
        return replace(self, **counts)


def parse_metrics(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"all"`` (``METRICS``) or a comma-separated subset of ``METRICS + OPTIONAL``, in that order."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if names == ["all"]:
        return METRICS
    known = METRICS + OPTIONAL
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise ValueError(f"--metrics expects 'all' or a comma-separated subset of {', '.join(known)}; "
                         f"got {','.join(names) or 'nothing'}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return tuple(m for m in known if m in names)


def score_suite(encode, data, *, seed: int = 0, sizes: SuiteSizes = SuiteSizes(), metrics=METRICS,
                n_jobs: int = 2, mig_indices: np.ndarray | None = None) -> dict:
    """One flat row of scores (columns named after the metric: ``mig``, ``beta_vae_*``,
    ``factor_vae_*``, ``dci_*``, ``sap``, ``modularity``, ``explicitness_*``, ...) of ``encode``
    (images -> codes, or a ``Representation``) on ``data``, plus ``seconds_<metric>``.
    ``pca_shape_knn_accuracy`` (``pca_shape``) measures the document's reading of its PCA figure.
    ``mig_indices``: the grid images MIG is scored on (default: the suite's i.i.d. train points).
    A metric's seconds include encoding the images it is the first to need; ``seconds_suite`` is
    the whole call."""
    metrics = parse_metrics(metrics)
    started = time.perf_counter()
    rep = Representation.of(encode, data)
    names = [data.factor_names[k] for k in varying_factors(data)]
    rng = np.random.default_rng([seed, 2])  # the i.i.d. points: their own stream of the seed
    train_idx, f_train = sample_indices(data, sizes.iid_train, rng)
    test_idx, f_test = sample_indices(data, sizes.iid_test, rng)
    parts: dict[str, dict] = {name: {} for name in METRICS}  # each metric's columns, merged in suite order

    def timed(name, fn):
        if name in metrics:
            t0 = time.perf_counter()
            row = parts[name]
            fn(row)
            row[f"seconds_{name}"] = time.perf_counter() - t0

    def codes():
        return rep.codes(train_idx).astype(np.float64), rep.codes(test_idx).astype(np.float64)

    def do_mig(row):
        if mig_indices is None:
            r = mig(codes()[0], f_train, num_bins=sizes.num_bins)
        else:
            factors = data.index_to_factors(mig_indices)[:, varying_factors(data)]
            r = mig(rep.codes(mig_indices).astype(np.float64), factors, num_bins=sizes.num_bins)
        row["mig"] = r.score
        row.update({f"gap_{n}": float(g) for n, g in zip(names, r.gaps)})
        # the share of each factor's entropy that its most informative code holds
        row.update({f"info_{n}": float(v) for n, v in zip(names, r.mutual_info.max(axis=0) / r.factor_entropy)})

    def do_beta_vae(row):
        r = beta_vae_score(rep, data, seed=seed, batch_size=sizes.batch_size, num_train=sizes.beta_vae_train,
                           num_eval=sizes.beta_vae_eval)
        row.update(beta_vae_train_accuracy=r.train_accuracy, beta_vae_eval_accuracy=r.eval_accuracy)

    def do_factor_vae(row):
        r = factor_vae_score(rep, data, seed=seed, batch_size=sizes.batch_size, num_train=sizes.factor_vae_train,
                             num_eval=sizes.factor_vae_eval, num_variance_estimate=sizes.factor_vae_variance)
        row.update(factor_vae_train_accuracy=r.train_accuracy, factor_vae_eval_accuracy=r.eval_accuracy,
                   factor_vae_num_active_dims=r.num_active_dims)

    def do_dci(row):
        c_train, c_test = codes()
        r = dci(c_train, f_train, c_test, f_test, seed=seed, n_jobs=n_jobs)
        row.update(dci_disentanglement=r.disentanglement, dci_completeness=r.completeness,
                   dci_informativeness_train=r.informativeness_train, dci_informativeness_test=r.informativeness_test)
        row.update({f"dci_accuracy_{n}": float(a) for n, a in zip(names, r.accuracy_test)})

    def do_sap(row):
        c_train, c_test = codes()
        row["sap"] = sap(c_train, f_train, c_test, f_test, n_jobs=n_jobs).score

    def do_modularity(row):
        c_train, c_test = codes()
        r = modularity_explicitness(c_train, f_train, c_test, f_test, num_bins=sizes.num_bins, n_jobs=n_jobs)
        row.update(modularity=r.modularity, explicitness_train=r.explicitness_train,
                   explicitness_test=r.explicitness_test)

    def do_unsupervised(row):
        r = unsupervised_scores(codes()[0], num_bins=sizes.num_bins)
        row.update({f.name: getattr(r, f.name) for f in fields(r)})

    def do_irs(row):
        r = irs(codes()[0], f_train, diff_quantile=sizes.diff_quantile, num_bins=sizes.num_bins)
        row.update(irs=r.score, irs_num_active_dims=r.num_active_dims)

    timed("mig", do_mig)
    timed("beta_vae", do_beta_vae)
    timed("factor_vae", do_factor_vae)
    # DCI after the encoding, not beside it: measured here, fitting its trees in two worker
    # processes while torch's two threads encoded took 352 s for the suite against 197 s one
    # after the other (torch's OpenMP threads spin on the cores the fits hold).
    timed("dci", do_dci)
    timed("sap", do_sap)
    timed("modularity_explicitness", do_modularity)
    timed("unsupervised", do_unsupervised)
    timed("irs", do_irs)
    timed("mig_sup", lambda row: row.update(mig_sup=mig_sup(codes()[0], f_train, num_bins=sizes.num_bins).score))
    timed("dcimig", lambda row: row.update(dcimig=dcimig(codes()[0], f_train, num_bins=sizes.num_bins).score))
    timed("jemmig", lambda row: row.update(jemmig=jemmig(codes()[0], f_train, num_bins=sizes.num_bins).score))

    def do_pca_shape(row):
        shape = names.index("shape") if "shape" in names else 0
        m = min(sizes.pca_points, len(train_idx))
        row["pca_shape_knn_accuracy"] = pca_shape_knn(codes()[0][:m], f_train[:m, shape], seed=seed)

    timed("pca_shape", do_pca_shape)
    row = {k: v for name in METRICS for k, v in parts[name].items()}
    row["images_encoded"] = rep.encoded
    row["seconds_suite"] = time.perf_counter() - started
    return row
