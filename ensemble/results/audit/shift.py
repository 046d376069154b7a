"""Shift between train and test (adversarial validation): can a classifier tell a test image from a training one?

Cheap features per image: the 28 px grey thumbnail pooled to 7x7 (layout and brightness), the mean
and standard deviation of each RGB channel of the 28 px image, and the native width, height and
channel count from the file's header. A logistic regression on the standardised features (classes
weighted equally) gives each image an out-of-fold probability of being a test image (5 folds
stratified by train/test, seeded); the ROC AUC of those probabilities is about 0.5 when the sets
look alike and near 1 when they differ. The training images with the highest "test" probability
are the ones most like the test set: a validation set drawn from them resembles the test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from ensemble.results.audit.near_copies import THUMB, grey_thumbnails
from ensemble.results.audit.stats import Header

FOLDS = 5
SEED = 0
POOLED = 7  # the grey thumbnail pooled to POOLED x POOLED
MOST_TEST_LIKE = 20
BLOCK = 8192  # images turned into features at once: 8192 x 2352 float32 = 77 MB
FEATURES = (
    f"{POOLED}x{POOLED} average-pooled {THUMB} px grey thumbnail, per-channel mean and std of the {THUMB} px RGB image, "
    "native width, height and channel count"
)
CLASSIFIER = f"LogisticRegression on standardised features, balanced class weights; {FOLDS}-fold stratified, seed {SEED}"


@dataclass(frozen=True)
class Shift:
    auc: float | None  # None when either set has fewer than 2 images
    test_probability: np.ndarray  # float (n_train,): out-of-fold probability that each training image is a test image
    folds: int


def pixel_features(images: np.ndarray) -> np.ndarray:
    """uint8 (n, THUMB, THUMB, 3) -> float32 (n, POOLED**2 + 6): pooled grey thumbnail, channel means and stds."""
    n, step = len(images), THUMB // POOLED
    grey = grey_thumbnails(images).reshape(n, POOLED, step, POOLED, step).mean(axis=(2, 4)).reshape(n, -1)
    pixels = images.reshape(n, -1, 3).astype(np.float32)
    return np.hstack([grey, pixels.mean(axis=1), pixels.std(axis=1)])


def features(images: np.ndarray, headers: Sequence[Header]) -> np.ndarray:
    """uint8 (n, THUMB, THUMB, 3) and each image's header -> float64 (n, POOLED**2 + 6 + 3), BLOCK images at a time."""
    n = len(images)
    pixels = [pixel_features(np.asarray(images[start : start + BLOCK])) for start in range(0, n, BLOCK)]
    sizes = np.array([(width, height, Image.getmodebands(mode)) for width, height, mode, _ in headers], dtype=np.float64)
    return np.hstack([np.vstack(pixels) if pixels else np.empty((0, POOLED**2 + 6)), sizes.reshape(n, 3)]).astype(np.float64)


def adversarial_validation(train: np.ndarray, test: np.ndarray, train_headers: Sequence[Header], test_headers: Sequence[Header]) -> Shift:
    """Out-of-fold train/test probabilities and their ROC AUC (test is the positive class)."""
    folds = min(FOLDS, len(train), len(test))
    if folds < 2:
        return Shift(auc=None, test_probability=np.full(len(train), np.nan), folds=folds)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([features(train, train_headers), features(test, test_headers)])
    y = np.r_[np.zeros(len(train), dtype=int), np.ones(len(test), dtype=int)]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    probability = cross_val_predict(model, x, y, cv=splits, method="predict_proba")[:, 1]
    return Shift(auc=float(roc_auc_score(y, probability)), test_probability=probability[: len(train)], folds=folds)


def most_test_like(shift: Shift, count: int = MOST_TEST_LIKE) -> np.ndarray:
    """Row numbers of the `count` training images with the highest test probability, highest first."""
    if shift.auc is None:
        return np.empty(0, dtype=np.int64)
    return np.argsort(-shift.test_probability, kind="stable")[:count]


def verdict(auc: float | None) -> str:
    """What the AUC says, in words, for the summary line."""
    if auc is None:
        return "too few train or test images to measure"
    if auc < 0.4:
        return "below 0.5: noise from few images, no shift"
    if auc <= 0.6:
        return "about 0.5: no shift"
    if auc <= 0.8:
        return "the test set differs somewhat: see audit/test_like.csv"
    return "the test set differs: a classifier tells it from train; see audit/test_like.csv"
