"""Renderings of one :class:`~medai.domain.prediction.Report`: JSON, DICOM SEG, DICOM SR, PDF and pictures."""

from __future__ import annotations
