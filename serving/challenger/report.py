"""What is said about champion and challenger: /api/v1/model's `roles`, and the page's line."""

from __future__ import annotations

from typing import Any

from flask import Response

from .roles import Answer, Roles
from .shadow import ModelInput


def describe(roles: Roles) -> dict[str, Any]:
    """Both roles, the mode, and the comparison (this worker's window and total, all workers)."""
    champion = roles.champion.live
    tracking = roles.tracking()
    rejection = roles.challenger.last_rejection
    overrun = roles.champion_overrun()
    payload: dict[str, Any] = {
        "mode": roles.mode(tracking),
        "champion": champion.summary() if champion else None,
        # The champion ran past PREDICT_TIMEOUT on some input: it hangs (a rollback's cue).
        "champion_overrun": overrun.to_json() if overrun else None,
        "candidate": roles.challenger.candidate(),
        "challenger": None,
        "challenger_rejection": rejection.to_json() if rejection else None,
    }
    if tracking is None:
        return payload
    held = tracking.challenger
    window, total = tracking.comparisons.figures()
    guard_window, _ = tracking.guard.answers.figures()
    everyone = roles.all_workers(held.model.version)
    payload["challenger"] = {
        **held.model.summary(), "status": held.status, "experiment_key": held.experiment_key,
        "canary_percent": roles.settings.canary_percent,
        "shadow": {"window": window.to_json(), "total": total.to_json(),
                   "dropped": roles.scorer.dropped, "pending": roles.scorer.pending()},
        "all_workers": {"compared": everyone.compared + everyone.valued,
                        "agreement": everyone.agreement,
                        "mean_abs_probability_diff": everyone.mean_gap,
                        "mean_abs_difference": everyone.mean_difference,
                        "mean_relative_difference": everyone.mean_relative,
                        "errors": everyone.failed, "dropped": everyone.dropped},
        "canary": {"window": guard_window.to_json(),
                   "guard": tracking.guard.trip.to_json() if tracking.guard.trip else None},
    }
    return payload


def page_line(roles: Roles) -> str | None:
    """E.g. "Staging 1.2.0 in shadow: agrees on 97.1% of 12,408 requests", or None."""
    tracking = roles.tracking()
    if tracking is None:
        return None
    held = tracking.challenger
    mode = roles.mode(tracking)
    where = {"shadow": "in shadow",
             "canary": f"in canary ({roles.settings.canary_percent:g}% of clients)",
             "canary-stopped": "out of the canary (the guard stopped it)"}[mode]
    everyone = roles.all_workers(held.model.version)
    if everyone.valued:
        unit = f" {held.model.schema.unit}" if held.model.schema.unit else ""
        figures = (f"differs by {everyone.mean_difference:,.4g}{unit} on average "
                   f"({everyone.mean_relative:.2%}) over {everyone.valued:,} requests")
    elif everyone.compared:
        figures = f"agrees on {everyone.agreement:.1%} of {everyone.compared:,} requests"
    else:
        figures = "no requests compared yet"
    return f"{held.status or 'Challenger'} {held.model.version} {where}: {figures}"


def shadow_after_sending(response: Response, roles: Roles, answer: Answer,
                         given: ModelInput) -> None:
    """Give the input to the challenger once the answer has been sent (never before)."""
    response.call_on_close(lambda: roles.shadow(answer, given))
