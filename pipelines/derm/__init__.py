"""Dermatology training and evaluation flows: skin-lesion images (:mod:`.train`, :mod:`.evaluate`) and omics
(:mod:`.omics`)."""

from __future__ import annotations
