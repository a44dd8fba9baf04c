"""The FastAPI decision-support service. Imports ``medai`` and ``models``, never ``pipelines``."""
