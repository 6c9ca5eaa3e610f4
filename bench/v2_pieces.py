"""Where a binary V2 batch request's time goes (part 2): in process, its sections read, its
tensors checked into the float matrix, the model through the champion's role, its outputs
written binary and the whole app called as WSGI; the front's share from serving's CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serving.challenger.shadow import ModelInput
from serving.http.context import services_of
from serving.oip.outputs import forms_of, outputs_of
from serving.oip.tensors import rows_of
from serving.oip.wire import parse_request

from .common import median
from .profiling import wsgi_call

SECTIONS = "binary V2: sections read (numbers as arrays over the body, strings split in numpy)"
MATRIX = "binary V2: tensors checked -> float matrix (category codes read from the bytes)"
ROLE = "binary V2: the model through the champion's role (deadline, champion metrics)"
OUTPUTS = "binary V2: output tensors written binary (tritonclient's default ask)"
APP = "the whole app in-process: binary V2 POST as WSGI (no sockets)"
MODEL = "model: compiled trees (served: leaf-mask tables)"  # part 2's own piece


def pieces(app, body: bytes, request: tuple[str, dict[str, str]]
           ) -> list[tuple[str, Callable[[], Any]]]:
    """The pieces of one binary V2 request (`request`: its path and headers) to time."""
    path, headers = request
    length = headers["Inference-Header-Content-Length"]
    parts = services_of(app)
    schema, limit = parts.holder.require().schema, parts.settings.max_batch
    parsed = parse_request(body, length)
    rows = rows_of(parsed, schema, limit)
    given = ModelInput(rows.matrix(schema), schema, rows.encode)
    answer = parts.roles.predict(given, lambda: "bench")
    forms = forms_of(parsed, schema)
    environ = {"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": length, "CONTENT_TYPE": ""}
    return [
        (SECTIONS, lambda: parse_request(body, length)),
        (MATRIX, lambda: rows_of(parsed, schema, limit).matrix(schema)),
        (ROLE, lambda: parts.roles.predict(given, lambda: "bench")),
        (OUTPUTS, lambda: outputs_of(answer, rows, "bench", forms, parts.monitor)),
        (APP, wsgi_call(app, path, body, environ=environ)),
    ]


def note(figures: dict, timed: dict[str, float], calls: int) -> str:
    """Where a binary request's serving CPU goes, from this run's pieces (ms) and CPU seconds
    (`calls` requests, or model calls, per round)."""
    cpu = figures["cpu_s"]
    serving = median(cpu["binary"]) / calls * 1e3
    model = median(cpu["served"]) / calls * 1e3
    app, alone = timed[APP], timed[MODEL]
    named = timed[SECTIONS] + timed[MATRIX] + timed[ROLE] + timed[OUTPUTS]
    return (
        "**Where a binary V2 request's time goes** (this run, 1000 rows, median CPU per "
        f"request): serving's processes {serving:.2f} ms against the model's {model:.2f} ms. "
        f"In process the whole app takes {app:.2f} ms: the sections read {timed[SECTIONS]:.3f} "
        "ms (numbers stay numpy arrays over the body; each BYTES section is checked whole in "
        "numpy, its strings made only if read), the tensors checked into the float matrix "
        f"{timed[MATRIX]:.3f} ms (seven bounds checks, two category columns coded from their "
        f"bytes), the model through the champion's role {timed[ROLE]:.3f} ms (the model alone "
        f"{alone:.3f} ms; the rest the deadline's timer and the champion metrics' count of each "
        f"row's class), the three outputs written binary {timed[OUTPUTS]:.3f} ms; the other "
        f"{max(app - named, 0.0):.2f} ms are the lean path, the metrics, the answer's header, "
        "and the model running slower among the request's other work than in a tight loop. "
        f"The rest, about {max(serving - app, 0.0):.2f} ms, is the front's (granian's HTTP, "
        "the 70 KB body handed to the worker's event loop, the 35 KB answer written back). "
        "Before this work the same request cost 261% on this basis (its fastest call 2.55 ms, "
        f"{median(figures['binary_ms']['fastest']):.2f} ms in this run): every section became "
        "Python lists (`tolist()`, 2,000 strings decoded one by one), checked value by value, "
        "and the outputs were written as JSON though tritonclient asks for them binary. The 50% "
        f"goal leaves {model / 2:.2f} ms beside the model for the front, the app and the "
        "decoding together: less than the front and the champion's role cost here before any "
        "tensor is read.")
