"""The array metrics against straightforward implementations written here from the definitions
(scikit-learn per pair, scipy's entropy, loops), and against properties every metric promises:
perfect codes score (close to) 1, random codes score at chance, permuting code dimensions
changes no score."""
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from vaebench.metrics import (dci, dcimig, discretize, irs, jemmig, mig, mig_sup, modularity_explicitness, sap,
                              unsupervised_scores)

TOL = 1e-9
SIZES = (3, 6, 10, 8, 4)  # classes per factor (small, so 20 bins resolve every value)


def draw(rng, n):
    return np.stack([rng.integers(0, s, size=n) for s in SIZES], axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    f_train, f_test = draw(rng, 1500), draw(rng, 700)
    scale = np.array([1.5, -0.7, 0.3, 2.0, 1.1])
    mixing = rng.normal(size=(5, 7))  # entangled: every code mixes every factor, plus noise
    entangled = lambda f: f @ mixing + 0.3 * rng.normal(size=(len(f), 7))  # noqa: E731
    return {
        "f_train": f_train, "f_test": f_test,
        "perfect": (f_train * scale, f_test * scale),
        "entangled": (entangled(f_train), entangled(f_test)),
        "random": (rng.normal(size=(1500, 7)), rng.normal(size=(700, 7))),
    }


# ---- straightforward implementations ----------------------------------------


def binned(x, bins=20):
    return np.stack([np.digitize(x[:, j], np.histogram(x[:, j], bins)[1][:-1]) for j in range(x.shape[1])], 1)


def mi_matrix(codes, factors):
    b = binned(codes)
    return np.array([[mutual_info_score(factors[:, k], b[:, j]) for k in range(factors.shape[1])]
                     for j in range(codes.shape[1])])


def entropies(factors):
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def ref_dci(ctr, ftr, cte, fte, seed=0):
    imp, acc_tr, acc_te = [], [], []
    for k in range(ftr.shape[1]):
        m = GradientBoostingClassifier(random_state=seed + k).fit(ctr, ftr[:, k])
        imp.append(np.abs(m.feature_importances_))
        acc_tr.append(np.mean(m.predict(ctr) == ftr[:, k]))
        acc_te.append(np.mean(m.predict(cte) == fte[:, k]))
    r = np.array(imp).T
    d_code = 1 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    c_fac = 1 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    return (np.sum(d_code * r.sum(1) / r.sum()), np.sum(c_fac * r.sum(0) / r.sum()), np.mean(acc_tr), np.mean(acc_te))


def ref_sap(ctr, ftr, cte, fte):
    s = np.zeros((ctr.shape[1], ftr.shape[1]))
    for j in range(ctr.shape[1]):
        for k in range(ftr.shape[1]):
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(ctr[:, j][:, None], ftr[:, k])
            s[j, k] = np.mean(clf.predict(cte[:, j][:, None]) == fte[:, k])
    srt = np.sort(s, axis=0)
    return np.mean(srt[-1] - srt[-2])


def ref_modularity(ctr, ftr):
    m = mi_matrix(ctr, ftr)
    out = []
    for j in range(m.shape[0]):
        theta = m[j].max()
        if theta == 0:
            out.append(0.0)
            continue
        rest = sum(m[j, k] ** 2 for k in range(m.shape[1]) if k != m[j].argmax())
        out.append(1 - rest / (theta ** 2 * (m.shape[1] - 1)))
    return np.mean(out)


def ref_explicitness(ctr, ftr, cte, fte):
    mean, std = ctr.mean(0), ctr.std(0)
    xtr, xte = (ctr - mean) / std, (cte - mean) / std
    tr, te = [], []
    for k in range(ftr.shape[1]):
        clf = LogisticRegression().fit(xtr, ftr[:, k])
        mlb = MultiLabelBinarizer()
        tr.append(roc_auc_score(mlb.fit_transform(ftr[:, k][:, None]), clf.predict_proba(xtr)))
        te.append(roc_auc_score(mlb.fit_transform(fte[:, k][:, None]), clf.predict_proba(xte)))
    return np.mean(tr), np.mean(te)


def ref_irs(codes, factors, q=0.99):
    f = binned(factors) - 1
    z = codes[:, codes.var(0) > 0]
    max_dev = np.abs(z - z.mean(0)).max(0)
    cum = np.zeros((z.shape[1], f.shape[1]))
    for k in range(f.shape[1]):
        vals = np.unique(f[:, k])
        for v in vals:
            g = z[f[:, k] == v]
            cum[:, k] += np.percentile(np.abs(g - g.mean(0)), q * 100, axis=0)
        cum[:, k] /= len(vals)
    per_code = (1 - cum / max_dev[:, None]).max(1)
    return np.average(per_code, weights=max_dev)


def ref_mig_sup(codes, factors):
    m = mi_matrix(codes, factors) / entropies(factors)[None, :]
    return np.mean([np.sort(row)[-1] - np.sort(row)[-2] for row in m])


def ref_dcimig(codes, factors):
    m = mi_matrix(codes, factors).T.copy()  # [K, D], as the review's code holds it
    for c in range(m.shape[1]):
        col = m[:, c]
        best, srt = np.argmax(col), np.sort(col)
        m[:, c] = 0
        m[best, c] = srt[-1] - srt[-2]
    return m.max(axis=1).sum() / sum(scipy.stats.entropy(np.bincount(factors[:, k])) for k in range(factors.shape[1]))


def ref_jemmig(codes, factors, bins=20):
    b = binned(codes)
    m = mi_matrix(codes, factors)
    out = []
    for k in range(factors.shape[1]):
        order = np.argsort(m[:, k])
        best, second = order[-1], order[-2]
        _, joint = np.unique(np.stack([factors[:, k], b[:, best]], 1), axis=0, return_counts=True)
        h_joint = scipy.stats.entropy(joint)
        h_f = scipy.stats.entropy(np.bincount(factors[:, k]))
        out.append(1 - (h_joint - m[best, k] + m[second, k]) / (h_f + np.log(bins)))
    return np.mean(out)


# ---- equal to the straightforward implementations ---------------------------

KINDS = ["perfect", "entangled", "random"]
GBT_N = (500, 250)  # DCI's boosted trees are the slow part: fewer points where they are fitted


def gbt_split(data, kind):
    (ctr, cte), ftr, fte = data[kind], data["f_train"], data["f_test"]
    return ctr[:GBT_N[0]], ftr[:GBT_N[0]], cte[:GBT_N[1]], fte[:GBT_N[1]]


@pytest.mark.parametrize("kind", KINDS)
def test_dci_equals_the_definition(data, kind):
    ctr, ftr, cte, fte = gbt_split(data, kind)
    r = dci(ctr, ftr, cte, fte, seed=3)
    d, c, itr, ite = ref_dci(ctr, ftr, cte, fte, seed=3)
    assert abs(r.disentanglement - d) < TOL and abs(r.completeness - c) < TOL
    assert abs(r.informativeness_train - itr) < TOL and abs(r.informativeness_test - ite) < TOL


def test_dci_parallel_fits_give_the_same_numbers(data):
    ctr, ftr, cte, fte = gbt_split(data, "entangled")
    one, two = dci(ctr, ftr, cte, fte, n_jobs=1), dci(ctr, ftr, cte, fte, n_jobs=2)
    assert np.array_equal(one.importance, two.importance) and one.disentanglement == two.disentanglement


@pytest.mark.parametrize("kind", KINDS)
def test_sap_equals_the_definition(data, kind):
    (ctr, cte), ftr, fte = data[kind], data["f_train"], data["f_test"]
    assert abs(sap(ctr, ftr, cte, fte).score - ref_sap(ctr, ftr, cte, fte)) < TOL


@pytest.mark.parametrize("kind", KINDS)
def test_modularity_explicitness_equal_the_definition(data, kind):
    (ctr, cte), ftr, fte = data[kind], data["f_train"], data["f_test"]
    r = modularity_explicitness(ctr, ftr, cte, fte)
    assert abs(r.modularity - ref_modularity(ctr, ftr)) < TOL
    tr, te = ref_explicitness(ctr, ftr, cte, fte)
    assert abs(r.explicitness_train - tr) < TOL and abs(r.explicitness_test - te) < TOL


@pytest.mark.parametrize("kind", KINDS)
def test_unsupervised_scores_equal_the_definition(data, kind):
    c = data[kind][0]
    r = unsupervised_scores(c)
    cov = np.cov(c.T)
    tc = 0.5 * (np.log(np.diag(cov)).sum() - np.log(np.linalg.det(cov)))
    wc = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])).real
    b = binned(c)
    mi = np.array([[mutual_info_score(b[:, i], b[:, j]) for j in range(c.shape[1])] for i in range(c.shape[1])])
    d = c.shape[1]
    assert abs(r.gaussian_total_correlation - tc) < 1e-8
    assert abs(r.gaussian_wasserstein_correlation - wc) < 1e-8
    assert abs(r.gaussian_wasserstein_correlation_norm - wc / np.trace(cov)) < TOL
    assert abs(r.mutual_info_score - (mi.sum() - np.trace(mi)) / (d * d - d)) < TOL


@pytest.mark.parametrize("kind", KINDS)
def test_irs_and_the_mig_family_equal_their_definitions(data, kind):
    c, f = data[kind][0], data["f_train"]
    assert abs(irs(c, f).score - ref_irs(c, f)) < TOL
    assert abs(mig_sup(c, f).score - ref_mig_sup(c, f)) < TOL
    assert abs(dcimig(c, f).score - ref_dcimig(c, f)) < TOL
    assert abs(jemmig(c, f).score - ref_jemmig(c, f)) < TOL


def test_discretize_is_the_reference_discretizer(data):
    c = data["entangled"][0]
    assert np.array_equal(discretize(c), binned(c) - 1)


# ---- properties ---------------------------------------------------------------


def test_perfect_codes_score_one_where_the_metric_promises_it(data):
    r = dci(*gbt_split(data, "perfect"))
    assert r.disentanglement > 0.999 and r.completeness > 0.999 and r.informativeness_test == 1.0
    (ctr, cte), ftr, fte = data["perfect"], data["f_train"], data["f_test"]
    me = modularity_explicitness(ctr, ftr, cte, fte)
    assert me.modularity > 0.999
    assert me.explicitness_test > 0.9  # a linear model of an ordinal code: middle classes are not separable
    # the other codes' information with a factor is not 0 but its finite-sample bias, about
    # (bins - 1)(classes - 1) / 2N nats: 1 minus about 1% here
    for score in (mig(ctr, ftr).score, mig_sup(ctr, ftr).score, dcimig(ctr, ftr).score):
        assert score > 0.98
    assert irs(ctr, ftr).score > 0.999
    # JEMMIG's best code holds exactly its factor: H(z*, v) - I(z*; v) = 0, only the runner-up's bias is left
    assert jemmig(ctr, ftr).score > 0.98
    u = unsupervised_scores(ctr)
    assert u.gaussian_total_correlation < 0.01  # independent factors, independent codes


def test_random_codes_score_at_chance(data):
    (ctr, cte), ftr, fte = data["random"], data["f_train"], data["f_test"]
    g = gbt_split(data, "random")
    n = len(g[3])
    chance = np.mean([np.max(np.bincount(g[3][:, k])) / n for k in range(5)])  # at most the majority class
    assert dci(*g).informativeness_test < chance + 4 * np.sqrt(0.25 / n)
    me = modularity_explicitness(ctr, ftr, cte, fte)
    assert abs(me.explicitness_test - 0.5) < 0.05  # AUC of an uninformative score
    assert sap(ctr, ftr, cte, fte).score < 0.05
    for score in (mig(ctr, ftr).score, mig_sup(ctr, ftr).score, dcimig(ctr, ftr).score):
        assert score < 0.05
    # the entangled codes sit between random and perfect on every gap metric
    (etr, _), _ = data["entangled"], None
    assert mig(ctr, ftr).score < mig(etr, ftr).score < mig(data["perfect"][0], ftr).score


def test_permuting_code_dimensions_changes_no_score(data):
    (ctr, cte), ftr, fte = data["entangled"], data["f_train"], data["f_test"]
    p = np.random.default_rng(1).permutation(ctr.shape[1])
    m, t = GBT_N
    pairs = [
        (lambda a, b: dci(a[:m], ftr[:m], b[:t], fte[:t]), ("disentanglement", "completeness", "informativeness_test")),
        (lambda a, b: sap(a, ftr, b, fte), ("score",)),
        (lambda a, b: modularity_explicitness(a, ftr, b, fte), ("modularity", "explicitness_test")),
        (lambda a, b: unsupervised_scores(a), ("gaussian_total_correlation", "mutual_info_score")),
        (lambda a, b: irs(a, ftr), ("score",)),
        (lambda a, b: mig_sup(a, ftr), ("score",)),
        (lambda a, b: dcimig(a, ftr), ("score",)),
        (lambda a, b: jemmig(a, ftr), ("score",)),
    ]
    for fn, names in pairs:
        r0, r1 = fn(ctr, cte), fn(ctr[:, p], cte[:, p])
        for name in names:
            # GBT ties between features break by feature order: DCI is equal up to that
            tol = 0.02 if fn is pairs[0][0] else 1e-9
            assert abs(getattr(r0, name) - getattr(r1, name)) < tol, name


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 3, 1)), "codes_train must be 2-D"),
    (np.full((10, 3), np.nan), "must be finite"),
    ("codes", "numpy array or torch tensor"),
])
def test_bad_codes_name_the_argument(bad, match):
    f = np.zeros((10, 2), dtype=np.int64)
    with pytest.raises((ValueError, TypeError), match=match):
        dci(bad, f, np.zeros((5, 3)), f[:5])


def test_bad_factors_name_the_argument():
    c = np.zeros((10, 3))
    with pytest.raises(ValueError, match="factors_test must have one row per code"):
        sap(c, np.zeros((10, 2), int), c[:5], np.zeros((4, 2), int))
    with pytest.raises(ValueError, match="integer class ids, got 0.5"):
        irs(c, np.full((10, 2), 0.5))
