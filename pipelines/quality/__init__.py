"""Training and evaluation of ``heart_mr_quality``: the artefact CNN, the coverage classifier and the
segmentation-quality regressors."""
