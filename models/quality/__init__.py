"""Image-quality networks (registered in :data:`medai.registry.NETWORKS`)."""

from models.quality import networks as networks  # noqa: F401  (registers)
