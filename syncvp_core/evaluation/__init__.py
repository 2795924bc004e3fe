"""Evaluation: per-frame scoring of predictions and baselines (scoring.py), the load / roll out / score / report
pipeline (pipeline.py) and its figures (plots.py)."""
