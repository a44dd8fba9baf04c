"""Schemathesis CLI hooks (``SCHEMATHESIS_HOOKS=tests.serving.schemathesis_hooks``): STOW-RS bodies."""

from __future__ import annotations

import schemathesis


@schemathesis.serializer("multipart/related")
def _multipart_related(ctx, value) -> bytes:  # noqa: ANN001
    """Generated STOW bodies as raw bytes (mostly not DICOM: they must get a 4xx, never a 5xx)."""
    return value if isinstance(value, bytes) else str(value).encode()
