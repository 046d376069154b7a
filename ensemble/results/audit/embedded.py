"""Near-copies in a CNN's embedding space: cosine similarity, judged against each image's own neighbourhood.

Thumbnail correlation cannot tell a near-copy from a distinct item of a class whose items look
alike (digits of one class; measured in benchmarks/RESULTS.md: precision 0.05-0.73). A trained
classifier's pooled features do not settle it by a fixed cosine either: they pull each class
together, so on the digits demo a distinct image's nearest neighbour has a cosine of 0.93 (median)
to 0.99 in a resnet10t and 0.985 to 0.999 in a small ConvNeXt: no one cut-off fits every model.

So a pair is judged by its relative embedding distance: its cosine distance (1 - cosine) divided
by the images' typical distance to their neighbours (the geometric mean of each image's distance
to its NEIGHBOURS-th nearest training image). A near-copy is much closer than the other items of
its class (relative distance near 0); a look-alike is about as close as they are (near 1). The
same ratio as Lowe's test for SIFT matches (Lowe, 2004), taken against the k-th neighbour, not
the 2nd, so that groups of several copies still pass. Arrays only: the embeddings are computed on
the torch side (inference/embeddings.py).
"""

from __future__ import annotations

import numpy as np

from ensemble.results.audit.near_copies import NEIGHBOURS, nearest_similarity

# Measured in benchmarks/RESULTS.md (bench_audit_trained.py, a resnet10t trained on 32 px digits):
# a distinct image's nearest neighbours lie at 0.3 and beyond (0.1% of candidate pairs), 0.66 at
# the 5th percentile; copies with a 1-2 px shift, brightness, noise or JPEG change at 0.05-0.5.
DEFAULT_EMBEDDING_THRESHOLD = 0.2
SCALE_FLOOR = 1e-6  # a row whose k neighbours are all exact copies has no scale: it is not divided by zero


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """float (n, d) -> float32 (n, d) scaled to unit norm (a zero row stays zero)."""
    values = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)


def neighbour_scale(queries: np.ndarray, train: np.ndarray, same_set: bool, k: int = NEIGHBOURS) -> np.ndarray:
    """float32 (n_queries,): each query's cosine distance to its k-th nearest training row
    (unit rows); 1 when there are not k of them."""
    _, similarity = nearest_similarity(queries, train, k, same_set)
    if similarity.shape[1] < k:
        return np.ones(len(queries), dtype=np.float32)
    return np.maximum(1 - similarity.min(axis=1), SCALE_FLOOR).astype(np.float32)


class EmbeddingSpace:
    """Unit-norm train and test embeddings and each row's neighbourhood scale.

    train: float (n_train, d); test: float (n_test, d), the same network's features.
    """

    def __init__(self, train: np.ndarray, test: np.ndarray, k: int = NEIGHBOURS):
        if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
            raise ValueError(f"expected train (n, d) and test (m, d) embeddings, got {train.shape} and {test.shape}")
        self.train, self.test, self.k = unit_rows(train), unit_rows(test), k
        self.train_scale = neighbour_scale(self.train, self.train, True, k)
        self.test_scale = neighbour_scale(self.test, self.train, False, k)

    def candidates(self, within: bool) -> np.ndarray:
        """int64 (n_pairs, 2): each (train or test) row's k nearest training rows by cosine."""
        queries = self.train if within else self.test
        rows, _ = nearest_similarity(queries, self.train, self.k, same_set=within)
        return np.stack([np.repeat(np.arange(len(queries)), rows.shape[1]), rows.reshape(-1)], axis=1).astype(np.int64)

    def relative_distance(self, pairs: np.ndarray, within: bool) -> np.ndarray:
        """float32 (n_pairs,): (1 - cosine) / sqrt(scale_i * scale_j) for pairs (query row, train row)."""
        queries, scale = (self.train, self.train_scale) if within else (self.test, self.test_scale)
        cosine = np.einsum("ij,ij->i", queries[pairs[:, 0]], self.train[pairs[:, 1]])
        return (np.maximum(1 - cosine, 0) / np.sqrt(scale[pairs[:, 0]] * self.train_scale[pairs[:, 1]])).astype(np.float32)
