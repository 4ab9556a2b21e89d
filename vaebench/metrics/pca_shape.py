"""How well shape separates in a 2-D PCA of the codes: the document reads its PCA figure (5,000
encoder means) as shapes separating at beta 8 and mixing at beta 1 and 4. This puts a number on
that reading: the 5-fold cross-validated accuracy of a k-nearest-neighbour classifier (k = 15) of
shape on the first two principal components. Chance is the share of the largest shape (about 1/3)."""
from __future__ import annotations

import numpy as np

from vaebench.metrics import _inputs


def pca_shape_knn(codes, shapes, *, seed: int = 0, neighbours: int = 15) -> float:
    """Cross-validated k-NN accuracy of ``shapes`` [N] from the 2-D PCA of ``codes`` [N, D]."""
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    c = _inputs.codes("pca_shape_knn", "codes", codes, min_dims=2)
    y = _inputs.factors("pca_shape_knn", "shapes", np.asarray(shapes).reshape(-1, 1), c.shape[0])[:, 0]
    points = PCA(n_components=2).fit_transform(c)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=neighbours), points, y, cv=folds).mean())
