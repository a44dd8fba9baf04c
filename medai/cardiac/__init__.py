"""Cardiac MR analysis: cine preprocessing, segmentation predictor, ED/ES, measurements."""
