"""Unsupervised proposers and classical baselines (multi-Otsu, k-means)."""
