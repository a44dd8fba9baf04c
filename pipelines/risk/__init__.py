"""Risk model training and evaluation flows (scikit-survival, MLflow)."""
