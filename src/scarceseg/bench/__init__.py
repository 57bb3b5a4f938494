"""Experiments, benchmarks, figures and report writing."""
