"""Near-copies among images: the best correlation of small grey thumbnails over small shifts.

Measured on copies that differ by a 1-2 px shift, a brightness change, noise or JPEG
re-compression (issue 19; benchmarks/bench_audit.py): perceptual hashes (phash, dhash) find at
most 0.2 of the copy pairs at a useful precision, because items of one class look alike, while
the best Pearson correlation of 28 px grey thumbnails over shifts of up to 2 px finds most of
them. Correlation ignores brightness and contrast by construction (each thumbnail is centred and
scaled to unit norm); the shifts absorb crops and small translations.

All pairs are never scored: each image's few nearest neighbours on 2x2-pooled thumbnails (pooling
makes a shifted copy still close) are found with a blocked matrix product that keeps only the top
`k` per row, and only those candidate pairs are scored over the 25 shifts, vectorised. The matrix
product is quadratic in numbers of images but runs in BLAS, block by block, in bounded memory.

Constant images (blank thumbnails) have no correlation with anything and are never paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

THUMB = 28  # thumbnail side in pixels
MAX_SHIFT = 2  # shifts of up to this many pixels, each way, on both axes
NEIGHBOURS = 10  # candidate pairs per image
POOL = 2  # candidates are searched on thumbnails pooled POOL x POOL
SIMILARITY_CELLS = 50_000_000  # similarity matrix cells held at once: 200 MB of float32, 400 MB of argpartition's indices
PAIR_BLOCK = 2048  # candidate pairs scored at once: 2048 x 25 windows x 576 pixels float32 = 118 MB
GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma


def grey_thumbnails(images: np.ndarray) -> np.ndarray:
    """uint8 (n, THUMB, THUMB, 3) -> float32 (n, THUMB, THUMB) luma."""
    if images.shape[1:] != (THUMB, THUMB, 3):
        raise ValueError(f"expected images of shape (n, {THUMB}, {THUMB}, 3), got {images.shape}")
    return images.astype(np.float32) @ GREY


def normalise(rows: np.ndarray) -> np.ndarray:
    """float32 (..., d): each row centred and scaled to unit norm; a constant row becomes zeros."""
    centred = rows - rows.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 1e-6)


def candidate_features(thumbs: np.ndarray) -> np.ndarray:
    """float32 (n, THUMB, THUMB) -> (n, (THUMB // POOL) ** 2), pooled and normalised."""
    side = THUMB // POOL
    pooled = thumbs.reshape(len(thumbs), side, POOL, side, POOL).mean(axis=(2, 4))
    return normalise(pooled.reshape(len(thumbs), -1))


def nearest_similarity(queries: np.ndarray, references: np.ndarray, k: int, same_set: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(int64 (n_queries, k'), float32 (n_queries, k')): each query's k' = min(k, available) most
    similar references (largest dot product; unit rows make it a cosine or a correlation) and their
    similarity, unordered. same_set: queries and references are the same rows; a row is not its own
    neighbour. A blocked matrix product in bounded memory."""
    k = min(k, len(references) - int(same_set))
    if k <= 0 or not len(queries):
        return np.empty((len(queries), max(k, 0)), dtype=np.int64), np.empty((len(queries), max(k, 0)), dtype=np.float32)
    columns, similarities = [], []
    block = max(64, SIMILARITY_CELLS // len(references))
    for start in range(0, len(queries), block):
        dissimilarity = queries[start : start + block] @ references.T
        dissimilarity *= -1  # in place: argpartition finds the smallest
        rows = np.arange(len(dissimilarity))
        if same_set:
            dissimilarity[rows, rows + start] = np.inf
        top = np.argpartition(dissimilarity, k - 1, axis=1)[:, :k]
        columns.append(top)
        similarities.append(-np.take_along_axis(dissimilarity, top, axis=1))
    return np.concatenate(columns).astype(np.int64), np.concatenate(similarities).astype(np.float32)


def nearest(queries: np.ndarray, references: np.ndarray, k: int, same_set: bool = False) -> np.ndarray:
    """int64 (n_queries * k', 2) pairs (query row, reference row): each query's k' = min(k, available)
    most correlated references (nearest_similarity)."""
    columns, _ = nearest_similarity(queries, references, k, same_set)
    return np.stack([np.repeat(np.arange(len(queries)), columns.shape[1]), columns.reshape(-1)], axis=1).astype(np.int64)


def window_spread(images: np.ndarray, crop: int) -> np.ndarray:
    """float32 (n, n_windows): the norm of each crop x crop window of images (n, side, side) once
    centred, from integral images (sum of squares minus the squared sum over the pixel count)."""
    padded = np.zeros((len(images), images.shape[1] + 1, images.shape[2] + 1))
    sums = []
    for values in (images.astype(np.float64), images.astype(np.float64) ** 2):
        padded[:, 1:, 1:] = values.cumsum(axis=1).cumsum(axis=2)
        sums.append(padded[:, crop:, crop:] - padded[:, :-crop, crop:] - padded[:, crop:, :-crop] + padded[:, :-crop, :-crop])
    spread = np.sqrt(np.maximum(sums[1] - sums[0] ** 2 / crop**2, 0))
    return spread.reshape(len(images), -1).astype(np.float32)


def shift_correlation(first: np.ndarray, second: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """float32 (n_pairs,): for each pair (i, j), the best correlation of first[i]'s centre
    (THUMB - 2 * MAX_SHIFT px square) with the windows of second[j] shifted by up to MAX_SHIFT px.

    first: float32 (n, THUMB, THUMB); second: float32 (m, THUMB, THUMB); pairs: int (n_pairs, 2).
    """
    crop = THUMB - 2 * MAX_SHIFT
    best = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), PAIR_BLOCK):
        block = pairs[start : start + PAIR_BLOCK]
        centres = normalise(first[block[:, 0], MAX_SHIFT : MAX_SHIFT + crop, MAX_SHIFT : MAX_SHIFT + crop].reshape(len(block), -1))
        partners = second[block[:, 1]]
        windows = sliding_window_view(partners, (crop, crop), axis=(1, 2)).reshape(len(block), -1, crop * crop)
        # A centred unit-norm centre has zero sum, so its dot product with a raw window equals the
        # one with the centred window: only the windows' norms are needed, not centred copies.
        dots = np.matmul(windows, centres[:, :, None])[:, :, 0]
        spread = window_spread(partners, crop)
        best[start : start + len(block)] = np.divide(dots, spread, out=np.zeros_like(dots), where=spread > 1e-3).max(axis=1)
    return best


THUMBNAILS, EMBEDDINGS = "thumbnails", "embeddings"  # which method found a pair
METHODS = (THUMBNAILS, EMBEDDINGS)  # a row's pairs: a thumbnails pair is preferred, being the one a person can check by eye


@dataclass(frozen=True)
class NearCopies:
    """What find_near_copies found, by row of the train and test arrays.

    group_of: int (n_train,), the near-duplicate group of each training row, -1 when it has no
    near-copy; groups numbered 0.. in the order of their first row. distance: float32 (n_train,),
    method: str (n_train,): the row's closest pair within its group, a thumbnails pair when it has
    one: its method and distance as that method measures it (1 - correlation; the relative
    embedding distance, embedded.py); nan and "" outside groups.
    test_pairs: int (n_pairs, 2) rows (test, train) judged near-copies; test_distance: float32
    (n_pairs,); test_method: str (n_pairs,). n_candidates: how many pairs were scored; n_rejected:
    pairs the thumbnails passed and the embeddings rejected as look-alikes (0 without embeddings).
    """

    group_of: np.ndarray
    distance: np.ndarray
    method: np.ndarray
    test_pairs: np.ndarray
    test_distance: np.ndarray
    test_method: np.ndarray
    n_candidates: int
    n_rejected: int = 0


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """Pairs within one set as (smaller, larger) rows, each once."""
    if not len(pairs):
        return pairs
    return np.unique(np.sort(pairs, axis=1), axis=0)


def groups_of(n_rows: int, pairs: np.ndarray, distance: np.ndarray, method: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group_of, distance, method) of each row from the near-copy pairs: connected components of
    two or more rows, and each grouped row's closest pair (thumbnails pairs first)."""
    # Imported here: the torch-free packages import without scipy (`ens blend` starts quickly).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n_rows, n_rows))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    grouped = sizes[component] >= 2
    # Number the groups by their first row: stable across runs, and readable in train.csv order.
    first_rows = np.unique(component[grouped], return_index=True)[1]
    order = np.argsort(np.flatnonzero(grouped)[first_rows])
    number = np.full(len(sizes), -1)
    number[np.unique(component[grouped])[order]] = np.arange(len(order))
    group_of = np.where(grouped, number[component], -1)
    # Each row's best pair: sort both ends of every pair by (method rank, distance), keep the first per row.
    ends, rank = pairs.T.reshape(-1), np.tile(np.array([METHODS.index(name) for name in method], dtype=np.int64), 2)
    closeness = np.tile(distance, 2)
    order = np.lexsort((closeness, rank, ends))
    rows, first = np.unique(ends[order], return_index=True)
    row_distance = np.full(n_rows, np.nan, dtype=np.float32)
    row_method = np.full(n_rows, "", dtype=object)
    row_distance[rows] = np.maximum(closeness[order][first], 0.0)  # rounding can make 1 - 1.0000001
    row_method[rows] = np.asarray(METHODS, dtype=object)[rank[order][first]]
    return group_of, row_distance, row_method


# Embeddings reject a thumbnail pair beyond REJECT_FACTOR x the embedding threshold: at the default
# threshold a relative distance of 1, no closer than the images' typical 10th neighbour. Measured
# (benchmarks/RESULTS.md): of 300 true copy pairs under a resnet10t trained with the defaults at
# 56 px, 91% lie within 0.6, 98% within 1.0; of the digits demo's 2,441 look-alike thumbnail pairs,
# 8.5% within 0.6, 21% within 1.0. At 3x (0.6) the embeddings cost a tenth of the true copies.
REJECT_FACTOR = 5


def judge(correlation: np.ndarray, relative: np.ndarray | None, threshold: float, embedding_threshold: float):
    """(keep, method, distance, rejected) of scored pairs. Without embeddings (relative None) a pair
    is a near-copy at a correlation of at least threshold. With them, the embeddings find a pair
    the thumbnails miss at a relative distance of at most embedding_threshold, and reject a
    thumbnail pair as a look-alike item of a class beyond REJECT_FACTOR times it (no closer than
    the images' typical 10th neighbour at the default threshold); the method
    says whether the thumbnails found the pair."""
    by_thumbnails = correlation >= threshold
    if relative is None:
        return by_thumbnails, np.full(len(correlation), THUMBNAILS, dtype=object), 1 - correlation, 0
    look_alike = relative > REJECT_FACTOR * embedding_threshold
    keep = (by_thumbnails & ~look_alike) | (relative <= embedding_threshold)
    method = np.where(by_thumbnails, THUMBNAILS, EMBEDDINGS).astype(object)
    return keep, method, np.where(by_thumbnails, 1 - correlation, relative), int(np.sum(by_thumbnails & look_alike))


def find_near_copies(
    train: np.ndarray, test: np.ndarray, threshold: float, k: int = NEIGHBOURS, space=None, embedding_threshold: float = 1.0
) -> NearCopies:
    """Near-duplicate groups within train, and test rows with a near-copy in train.

    train, test: float32 (n, THUMB, THUMB) grey thumbnails (grey_thumbnails). Without `space`, a
    pair is a near-copy when its shift_correlation is at least threshold. space: an
    embedded.EmbeddingSpace of the same rows; its nearest neighbours join the candidates and its
    relative distance judges every pair (judge).
    """
    train_features, test_features = candidate_features(train), candidate_features(test)
    results = []
    for within in (True, False):
        queries = train if within else test
        candidates = nearest(train_features if within else test_features, train_features, k, same_set=within)
        if space is not None:
            candidates = np.concatenate([candidates, space.candidates(within)])
        candidates = unique_pairs(candidates) if within else np.unique(candidates, axis=0)
        correlation = shift_correlation(queries, train, candidates)
        relative = None if space is None else space.relative_distance(candidates, within)
        keep, method, distance, rejected = judge(correlation, relative, threshold, embedding_threshold)
        results.append((candidates[keep], distance[keep].astype(np.float32), method[keep], rejected, len(candidates)))
    (pairs, distance, method, rejected, n_within), (test_pairs, test_distance, test_method, test_rejected, n_across) = results
    group_of, row_distance, row_method = groups_of(len(train), pairs, distance, method)
    return NearCopies(
        group_of=group_of,
        distance=row_distance,
        method=row_method,
        test_pairs=test_pairs,
        test_distance=np.maximum(test_distance, 0.0).astype(np.float32),
        test_method=test_method,
        n_candidates=n_within + n_across,
        n_rejected=rejected + test_rejected,
    )
