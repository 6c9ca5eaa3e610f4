"""The HTML pages, for people: the form, the result, and the form again with its errors."""

from __future__ import annotations

from flask import Blueprint, make_response, render_template, request

from serving.challenger.report import page_line, shadow_after_sending
from serving.challenger.shadow import ModelInput
from serving.errors import InvalidInput
from serving.inputs.checks import parse_form
from serving.inputs.schema import DIAMONDS, is_demo, tagline
from serving.telemetry import metrics
from serving.telemetry.mpm_events import monitor

from .context import client_key, holder, model_headers, roles

bp = Blueprint("web", __name__)
# Pages use only our stylesheet: no scripts, no third parties, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@bp.after_request
def secure(response):
    """Add the security headers to every page."""
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.app_context_processor
def challenger_line() -> dict[str, str | None]:
    """The page's line about the challenger, on every page."""
    return {"challenger_line": page_line(roles())}


@bp.app_context_processor
def heading() -> dict[str, object]:
    """The page's title and tagline: the demo's, or the served model's own."""
    model = holder().live
    schema = model.schema if model else DIAMONDS
    if is_demo(schema):
        return {"demo": True, "site_title": "Diamond grader"}
    return {"demo": False, "site_title": model.primary if model else "Model",
            "tagline": tagline(schema)}


@bp.get("/")
def index():
    """The empty form, filled with typical values."""
    model = holder().live
    schema = model.schema if model else DIAMONDS
    notice = None if model else _no_model_notice()
    return render_template("form.html", schema=schema, values=schema.defaults(), errors={},
                           model=model, notice=notice)


@bp.post("/predict")
def predict():
    """Predict from the form; on bad input, the form again with the errors and the values."""
    model = holder().live
    schema = model.schema if model else DIAMONDS
    values = {f.name: request.form.get(f.name, "") for f in schema.features}
    if model is None:
        return render_template("form.html", schema=schema, values=values, errors={},
                               model=None, notice=_no_model_notice()), 503, {"Retry-After": "1"}
    try:
        instance, matrix = parse_form(request.form, schema)
    except InvalidInput as exc:
        errors = {e.field: e.message for e in exc.errors}
        return render_template("form.html", schema=schema, values=values, errors=errors,
                               model=model), 400
    form = request.form.to_dict()  # kept for the challenger, after the request has ended
    given = ModelInput(matrix, schema, lambda other: parse_form(form, other)[1])
    both = roles()
    answer = both.predict(given, client_key)
    model, answers = answer.model, answer.predictions
    metrics.PREDICTIONS.labels("web", model.version).inc()
    sender = monitor()
    prediction_id = sender.new_id(model.version)
    sender.record(model, prediction_id, (instance,), answers, batch=False)
    page = render_template("result.html", schema=schema, values=values, instance=instance,
                           answers=answers, per_class=answers.per_class(0), model=model,
                           role=answer.role.value, prediction_id=prediction_id)
    response = make_response(page, 200, {**model_headers(model, answer.role.value),
                                         "X-Prediction-Id": prediction_id})
    shadow_after_sending(response, both, answer, given)
    return response


def _no_model_notice() -> str:
    rejection = holder().last_rejection
    if rejection is None:
        return "No model is loaded yet. Please try again in a few seconds."
    return (f"No model can be served: snapshot {rejection.snapshot} was rejected "
            f"({rejection.reason}). Please try again later.")
