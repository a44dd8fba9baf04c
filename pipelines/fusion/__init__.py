"""Training and evaluation flows of the multimodal fusion models (:mod:`models.fusion`)."""
