"""Intensity normalisation, crop/pad/resize, slicing volumes, seeded augmentation."""
