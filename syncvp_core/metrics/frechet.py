"""Fréchet distance between Gaussian fits of two feature sets (the distance behind FVD / FID).

    d² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)

The trace of the matrix square root is taken from the eigenvalues of the symmetric PSD matrix
Σ₁^½ Σ₂ Σ₁^½ (as TF-GAN does with an SVD), which stays real and stable when the covariances are singular,
as they are whenever there are fewer samples than feature dimensions (400 for I3D). With that few samples
the value is still defined but strongly biased, so reports give the sample count beside it.
"""
from __future__ import annotations

import numpy as np


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of N×D features (N ≥ 2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need an N×D feature array with N ≥ 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance (squared, as FID/FVD report it) between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)


def feature_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between the Gaussian fits of two N×D feature sets."""
    return frechet_distance(*gaussian_fit(real), *gaussian_fit(fake))
