"""Image quality: k-space artefact simulation, the artefact / coverage / segmentation-quality predictor
(``heart_mr_quality``) and the quality gate every analysis passes through (:mod:`medai.quality.gate`)."""
