"""The diagnosis stress test's bookkeeping: a wrong suggestion in a report that does not ask for review is a silent
error; refused studies and flagged errors are not."""

from __future__ import annotations

from pipelines.quality.dx_safety import summarise


def _row(artefact: str, strength: float, gate: str, correct: bool | None, review: bool) -> dict:
    return {"group": "NOR", "artefact": artefact, "strength": strength, "share": 1.0 if strength else 0.0,
            "gate": gate, "correct": correct, "review_required": review}


def test_silent_errors_are_wrong_suggestions_without_a_review_request() -> None:
    rows = [_row("none", 0.0, "pass", True, False),
            _row("motion", 0.6, "pass", False, False),     # silent
            _row("motion", 0.6, "review", False, True),    # wrong, but the report asks for review
            _row("motion", 1.0, "refused", None, True),    # no report
            _row("motion", 1.0, "pass", True, True)]
    rows[3]["ungated_correct"] = True  # without the gate, the refused study would have been read right
    s = summarise(rows)
    assert s["all"] == {"runs": 5, "refused": 1, "gate_review": 1, "correct": 2, "wrong": 2,
                        "wrong_flagged_for_review": 1, "silent_errors": 1, "correct_without_review": 1,
                        "refused_but_read_right_without_the_gate": 1}
    assert s["clean"]["correct"] == 1 and s["clean"]["silent_errors"] == 0
    assert s["motion@0.6x1.0"]["silent_errors"] == 1 and s["motion@1.0x1.0"]["refused"] == 1
