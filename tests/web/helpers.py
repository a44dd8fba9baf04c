"""Browser-test helpers: axe-core accessibility checks (the bundled ``axe.min.js``; nothing is downloaded)."""

from __future__ import annotations

from typing import Any


def axe_violations(page: Any, impacts: tuple[str, ...] = ("critical",)) -> list[dict]:
    """Run axe-core on the page's current document; the violations whose impact is one of ``impacts``."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [v for v in results.response["violations"] if v.get("impact") in impacts]


def axe_critical(page: Any) -> list[dict]:
    """The axe-core violations of impact "critical" (each: id, impact, help, helpUrl, nodes...)."""
    return axe_violations(page, ("critical",))


def describe(violations: list[dict]) -> str:
    """One line per violation (id, help, first targets), for assertion messages."""
    return "\n".join(f"{v['id']}: {v.get('help', '')} at {[n.get('target') for n in v.get('nodes', [])[:3]]}"
                     for v in violations)
