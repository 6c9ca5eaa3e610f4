"""The infer answer's output tensors, written as JSON or, where the request asks, binary.

A request's `outputs` names the outputs it wants (all by default); `parameters.binary_data_output`
asks for every output as binary data, an output's own `parameters.binary_data` (true or false)
overriding it (the binary tensor data extension; tritonclient asks binary by default). A binary
output is listed with `parameters.binary_data_size` instead of `data`, its bytes following the
JSON header in the outputs' order: little-endian FP64, or each string's 4-byte length and UTF-8
bytes. Such an answer says where the header ends (`Inference-Header-Content-Length`) and is
`application/octet-stream`; an answer without binary outputs is plain JSON, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from serving.challenger.roles import Answer
from serving.http.replies import JSON
from serving.inputs.schema import Schema
from serving.model.predictions import Task
from serving.telemetry.mpm_events import Monitor, monitor

from .tensors import Rows
from .wire import InferRequest, V2Error, shown

HEADER_LENGTH = "Inference-Header-Content-Length"
OCTET_STREAM = "application/octet-stream"
_LENGTH = struct.Struct("<I").pack  # a BYTES element's length prefix
_ENCODER = msgspec.json.Encoder()


class OutputTensor(msgspec.Struct, omit_defaults=True, gc=False):
    """One output tensor of an answer: its data (JSON), or its binary section's size."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None
    parameters: dict[str, int] | None = None


class InferResponse(msgspec.Struct, omit_defaults=True, gc=False):
    """The answer to POST /v2/models/{name}/infer (its JSON header, with binary outputs)."""

    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    parameters: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Forms:
    """Which outputs a request asks for (None: every one), and which as binary data."""

    names: frozenset[str] | None = None
    binary: Mapping[str, bool] = field(default_factory=dict)  # an output's own binary_data
    default: bool = False  # the request's binary_data_output

    def of(self, name: str) -> bool | None:
        """None if the output is not asked for; else whether it is asked as binary."""
        if self.names is not None and name not in self.names:
            return None
        return self.binary.get(name, self.default)


EVERY_OUTPUT_AS_JSON = Forms()


def forms_of(body: InferRequest, schema: Schema) -> Forms:
    """The outputs a request asks for and their forms; V2Error for an output not answered."""
    if not body.outputs and not body.parameters:
        return EVERY_OUTPUT_AS_JSON
    default = (body.parameters or {}).get("binary_data_output") is True
    if not body.outputs:
        return Forms(None, {}, default)
    known = set(output_names(schema))
    unknown = sorted({output.name for output in body.outputs} - known)
    if unknown:
        raise V2Error(f"output {shown(unknown[0])} is not an output of this model "
                      f"(outputs: {', '.join(sorted(known))})")
    binary = {output.name: asked for output in body.outputs
              if type(asked := (output.parameters or {}).get("binary_data")) is bool}
    return Forms(frozenset(output.name for output in body.outputs), binary, default)


def outputs_of(answer: Answer, rows: Rows, prediction_id: str, forms: Forms = EVERY_OUTPUT_AS_JSON,
               sender: Monitor | None = None) -> tuple[list[OutputTensor], list[bytes]]:
    """Offer the answer to MPM and write its asked output tensors (the one place reading
    predictions), with the bytes of the binary ones in order.

    A classifier's `label` and `probability` (of that label) as /api/v1/predict answers them,
    and `probabilities` per class (the schema's class order) where the answer holds them; a
    regressor's `value`.
    """
    model, answers = answer.model, answer.predictions
    count = answers.rows
    # Rows of a request of several rows have the ids <prediction_id>-<i>, as a batch's do.
    (sender or monitor()).record(model, prediction_id, lambda: rows.rows, answers, count != 1)
    written: list[OutputTensor] = []
    sections: list[bytes] = []

    def add(name: str, datatype: str, shape: list[int], values: Any) -> None:
        binary = forms.of(name)
        if binary is None:
            return
        if not binary:
            written.append(OutputTensor(name, datatype, shape,
                                        values if type(values) is list else list(values)))
            return
        section = _strings(values, model.schema.classes) if datatype == "BYTES" else \
            np.asarray(values, dtype="<f8").tobytes()
        written.append(OutputTensor(name, datatype, shape,
                                    parameters={"binary_data_size": len(section)}))
        sections.append(section)

    if answers.task is Task.REGRESSION:
        add("value", "FP64", [count], answers.values)
        return written, sections
    add("label", "BYTES", [count], answers.labels)
    add("probability", "FP64", [count], answers.probabilities)
    classes = model.schema.classes
    binary = forms.of("probabilities")
    if answers.class_probabilities is not None and binary is not None:
        table = answers.class_array(classes) if binary else answers.class_table(classes)
        if table is None:  # classes named otherwise than the schema's: row by row, as before
            rows_of_classes = [answers.per_class(i) or {} for i in range(count)]
            table = [row[c] for row in rows_of_classes for c in classes]
        add("probabilities", "FP64", [count, len(classes)], table)
    return written, sections


def _strings(values: Sequence[str], known: Sequence[str]) -> bytes:
    """A BYTES section: each string's length and UTF-8 bytes (the known ones' made once)."""
    made = {name: _LENGTH(len(encoded)) + encoded for name in known
            for encoded in [name.encode()]}
    try:
        return b"".join(map(made.__getitem__, values))
    except KeyError:
        return b"".join(_LENGTH(len(encoded)) + encoded
                        for encoded in (value.encode() for value in values))


def written(response: InferResponse,
            sections: list[bytes]) -> tuple[bytes, list[tuple[str, str]], str]:
    """The answer's body, the headers its binary outputs add, and its Content-Type."""
    header = _ENCODER.encode(response)
    if not sections:
        return header, [], JSON
    return b"".join([header, *sections]), [(HEADER_LENGTH, str(len(header)))], OCTET_STREAM


def output_names(schema: Schema) -> tuple[str, ...]:
    """The names of the outputs a model of this schema answers."""
    if schema.regression:
        return ("value",)
    return ("label", "probability", "probabilities")


def output_metadata(schema: Schema) -> list[dict[str, Any]]:
    """The outputs the model answers, as model metadata lists them (see outputs_of)."""
    if schema.regression:
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    return [{"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(schema.classes)]}]
