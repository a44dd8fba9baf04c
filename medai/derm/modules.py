"""Gene co-expression modules and their eigengenes, fitted on training samples only (no transductive leak).

The COPS psoriasis release ships WGCNA module eigengenes computed on all 445 samples together: every
leave-one-study-out fold then sees its test samples in the unsupervised step. :class:`ModuleEigengenes` is the
in-fold version, a scikit-learn transformer, so inside a ``Pipeline`` it is refitted in every fold:

1. standardise each gene with the training mean and SD;
2. WGCNA-style unsigned adjacency ``|cor|^power`` between genes (training samples), its topological overlap (TOM),
   average-linkage hierarchical clustering of ``1 - TOM``, cut at ``cut_height``; the ``n_modules`` largest
   clusters of at least ``min_size`` genes are the modules, the rest are unassigned ("grey") genes;
3. a module's eigengene is its first principal component on the training samples (loadings kept, sign set so it
   correlates positively with the module's mean expression, scaled to unit training variance); new samples are
   projected with the training loadings.

:meth:`ModuleEigengenes.gene_importance` turns a linear model's per-module coefficients back into per-gene
scores (``|coef_m| * |kME|``), so biomarker rankings are comparable across folds whose modules differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from medai.errors import ConfigError


class ModuleEigengenes(TransformerMixin, BaseEstimator):
    """Co-expression modules + eigengenes (see the module docstring).

    Args:
        n_modules: most modules kept (the largest ones).
        power: soft-threshold power of the adjacency (WGCNA's default for unsigned networks is 6).
        min_size: smallest module kept.
        max_genes: keep the ``max_genes`` most variable training genes first (``None``: all).
        cut_height: where the gene tree is cut, as a fraction from its lowest to its highest merge (0.99 is
            dynamicTreeCut's default).
    """

    def __init__(
        self,
        n_modules: int = 12,
        power: float = 6.0,
        min_size: int = 10,
        max_genes: int | None = 5000,
        cut_height: float = 0.99,
    ):
        self.cut_height = cut_height
        self.n_modules = n_modules
        self.power = power
        self.min_size = min_size
        self.max_genes = max_genes

    def fit(self, X: np.ndarray, y: Any = None) -> ModuleEigengenes:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[0] < 3:
            raise ConfigError(f"ModuleEigengenes needs a samples x genes matrix with >= 3 samples, got {X.shape}")
        if not np.isfinite(X).all():
            raise ConfigError("the expression matrix has NaN or infinite values: impute or drop them first")
        sd = X.std(0)
        genes = np.flatnonzero(sd > 0)
        if self.max_genes and len(genes) > self.max_genes:
            genes = genes[np.argsort(-sd[genes])[: self.max_genes]]
        self.genes_ = np.sort(genes)
        self.mean_ = X[:, self.genes_].mean(0)
        self.sd_ = X[:, self.genes_].std(0)
        Z = (X[:, self.genes_] - self.mean_) / self.sd_
        corr = np.corrcoef(Z, rowvar=False)
        adj = np.abs(corr) ** self.power
        np.fill_diagonal(adj, 0.0)
        # topological overlap (WGCNA): genes are close when they share strongly connected neighbours
        k = adj.sum(0)
        tom = (adj @ adj + adj) / (np.minimum.outer(k, k) + 1.0 - adj)
        dist = 1.0 - tom
        np.fill_diagonal(dist, 0.0)
        tree = linkage(squareform(np.clip(dist, 0, None), checks=False), method="average")
        heights = tree[:, 2]
        # dynamicTreeCut's default height: 99 % of the way from the lowest to the highest merge; branches joining
        # above it are separate, genes left alone are unassigned
        h = heights.min() + self.cut_height * (heights.max() - heights.min())
        cut = fcluster(tree, t=h, criterion="distance")
        sizes = {c: int((cut == c).sum()) for c in np.unique(cut)}
        kept = sorted((c for c, n in sizes.items() if n >= self.min_size), key=lambda c: -sizes[c])[: self.n_modules]
        if not kept:
            raise ConfigError(
                f"no co-expression module of >= {self.min_size} genes: lower min_size or n_modules, or check the data"
            )
        self.modules_: list[np.ndarray] = []  # column indices into genes_
        self.loadings_: list[np.ndarray] = []
        self.scale_: list[float] = []
        for c in kept:
            cols = np.flatnonzero(cut == c)
            _, s, vt = np.linalg.svd(Z[:, cols], full_matrices=False)
            v = vt[0]
            score = Z[:, cols] @ v
            if np.corrcoef(score, Z[:, cols].mean(1))[0, 1] < 0:
                v = -v
                score = -score
            self.modules_.append(cols)
            self.loadings_.append(v)
            self.scale_.append(float(score.std()) or 1.0)
        self.kme_ = self._kme(Z)
        self.feature_names_ = [f"ME{i + 1}" for i in range(len(self.modules_))]
        return self

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        return np.stack(
            [Z[:, cols] @ v / s for cols, v, s in zip(self.modules_, self.loadings_, self.scale_, strict=True)], 1
        )

    def _kme(self, Z: np.ndarray) -> np.ndarray:
        """``(genes, modules)`` correlation of each kept gene with each eigengene (module membership)."""
        E = self._scores(Z)
        Zc = (Z - Z.mean(0)) / Z.std(0)
        Ec = (E - E.mean(0)) / E.std(0)
        return Zc.T @ Ec / len(Z)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float64)
        Z = (X[:, self.genes_] - self.mean_) / self.sd_
        return self._scores(Z)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    def membership(self) -> list[np.ndarray]:
        """Gene column indices (into the input matrix) of each module."""
        return [self.genes_[cols] for cols in self.modules_]

    def gene_importance(self, module_weights: np.ndarray, n_inputs: int) -> np.ndarray:
        """``(n_inputs,)`` gene scores from per-module weights: ``sum_m |w_m| * |kME_gm|`` for the module the gene is
        assigned to (unassigned genes: 0)."""
        w = np.abs(np.asarray(module_weights, np.float64))
        out = np.zeros(n_inputs)
        for m, cols in enumerate(self.modules_):
            out[self.genes_[cols]] = w[m] * np.abs(self.kme_[cols, m])
        return out
