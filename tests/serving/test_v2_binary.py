"""Binary tensor data both ways: sections read as the same values JSON sends, outputs written
binary when asked, refusals worded as for JSON.

Bodies are written by hand (a header of Inference-Header-Content-Length bytes, then each
section) to reach every kind of section; tests/serving/test_v2_client.py drives tritonclient.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from serving.model import dataset
from tests.support.diamonds import CLASSIFIER, VALID

INFER = f"/v2/models/{CLASSIFIER}/infer"
FEATURES = list(VALID)
# Rows of the data set, their carats exact in FP32 and their prices whole (sent as INT64).
ROWS = [{**row, "carat": float(np.float32(row["carat"])), "price": int(row["price"])}
        for row in dataset.sample(40)[0]]
# Each feature's datatype when sent binary: the numbers in three widths and types.
DATATYPES = {name: "BYTES" if isinstance(value, str) else "FP64"
             for name, value in VALID.items()} | {"carat": "FP32", "price": "INT64"}
PACKED = {"FP64": "<d", "FP32": "<f", "INT64": "<q"}


@pytest.fixture(scope="module")
def client(module_app):
    """A test client of an app serving version 1.0.0 of our layout (one for the module)."""
    return module_app.test_client()


def strings_section(values: list[str]) -> bytes:
    """BYTES elements as the protocol writes them: a 4-byte length, then the UTF-8 bytes."""
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def json_body(rows: list[dict], **top) -> dict:
    """The rows as one JSON tensor per feature."""
    return {"inputs": [{"name": n, "shape": [len(rows)], "datatype": DATATYPES[n],
                        "data": [r[n] for r in rows]} for n in FEATURES], **top}


def binary_body(rows: list[dict], sections: dict[str, bytes] | None = None) -> tuple[bytes, dict]:
    """The rows as one binary tensor per feature; `sections` replaces some tensors' bytes."""
    chunks = {n: strings_section([r[n] for r in rows]) if DATATYPES[n] == "BYTES" else
              struct.pack(f"<{len(rows)}{PACKED[DATATYPES[n]][1]}", *[r[n] for r in rows])
              for n in FEATURES} | (sections or {})
    header = json.dumps({"inputs": [
        {"name": n, "shape": [len(rows)], "datatype": DATATYPES[n],
         "parameters": {"binary_data_size": len(chunks[n])}} for n in FEATURES]}).encode()
    return header + b"".join(chunks.values()), {
        "Inference-Header-Content-Length": str(len(header))}


def read_answer(response) -> dict:
    """A V2 answer with its binary outputs read back into `data`, as a client reads them."""
    raw = response.get_data()
    size = response.headers.get("Inference-Header-Content-Length")
    if size is None:
        return json.loads(raw)
    answer, at = json.loads(raw[:int(size)]), int(size)
    for output in answer["outputs"]:
        length = output.pop("parameters", {}).get("binary_data_size")
        chunk, at = raw[at:at + length], at + length
        output["data"] = np.frombuffer(chunk, "<f8").tolist() if output["datatype"] == "FP64" \
            else _strings(chunk)
    assert at == len(raw), "the binary outputs fill the body"
    return answer


def _strings(chunk: bytes) -> list[str]:
    values, at = [], 0
    while at < len(chunk):
        (length,) = struct.unpack_from("<I", chunk, at)
        values.append(chunk[at + 4:at + 4 + length].decode())
        at += 4 + length
    return values


def test_binary_sections_answer_as_the_same_rows_sent_as_json(client):
    """FP64, FP32, INT64 and BYTES sections of 40 rows: the answers of /api/v1/predict."""
    rows = ROWS
    raw, headers = binary_body(rows)
    binary = client.post(INFER, data=raw, headers=headers)
    assert binary.status_code == 200, binary.text
    v1 = client.post("/api/v1/predict", json={"instances": rows}).get_json()["predictions"]
    outputs = {o["name"]: o["data"] for o in binary.get_json()["outputs"]}
    assert outputs["label"] == [p["label"] for p in v1]
    assert outputs["probability"] == [p["probability"] for p in v1]
    as_json = client.post(INFER, json=json_body(rows)).get_json()
    assert binary.get_json()["outputs"] == as_json["outputs"]


def test_outputs_asked_binary_follow_the_header_with_the_json_answers_values(client):
    rows = ROWS[:3]
    as_json = client.post(INFER, json=json_body(rows))
    binary = client.post(INFER, json=json_body(rows, parameters={"binary_data_output": True}))
    assert binary.status_code == 200, binary.text
    assert binary.headers["Content-Type"] == "application/octet-stream"
    header = json.loads(binary.get_data()[:int(binary.headers["Inference-Header-Content-Length"])])
    labels = as_json.get_json()["outputs"][0]["data"]
    assert [(o["name"], "data" in o, o["parameters"]) for o in header["outputs"]] == [
        ("label", False, {"binary_data_size": len(strings_section(labels))}),
        ("probability", False, {"binary_data_size": 3 * 8}),
        ("probabilities", False, {"binary_data_size": 3 * 2 * 8})]
    assert read_answer(binary) | {"parameters": None} == \
        as_json.get_json() | {"parameters": None}
    # An output's own binary_data overrides the request's; only the outputs asked are answered.
    mixed = client.post(INFER, json=json_body(rows, parameters={"binary_data_output": True},
                                              outputs=[{"name": "label",
                                                        "parameters": {"binary_data": False}},
                                                       {"name": "probability"}]))
    header = json.loads(mixed.get_data()[:int(mixed.headers["Inference-Header-Content-Length"])])
    assert [(o["name"], o.get("parameters")) for o in header["outputs"]] == [
        ("label", None), ("probability", {"binary_data_size": 24})]
    asked = client.post(INFER, json=json_body(rows, outputs=[
        {"name": "probabilities", "parameters": {"binary_data": True}}]))
    assert [o["name"] for o in read_answer(asked)["outputs"]] == ["probabilities"]
    plain = client.post(INFER, json=json_body(rows, parameters={"binary_data_output": "yes"}))
    assert plain.headers["Content-Type"] == "application/json"  # only true asks for binary
    assert "Inference-Header-Content-Length" not in plain.headers


REFUSED_ALIKE = {  # a feature and its bad value in the second row, binary and JSON alike
    "NaN": ("depth", math.nan),
    "out of bounds": ("carat", 99.0),
    "an INT64 out of bounds": ("price", 10 ** 12),
    "an unknown category": ("color", "Z"),
    "an empty string": ("color", ""),
    "a NUL in a string": ("clarity", "SI1\x00"),
    "a string over 255 bytes": ("clarity", "x" * 300),
    "text that is not ASCII": ("clarity", "SÏ1"),
}


@pytest.mark.parametrize("case", REFUSED_ALIKE.values(), ids=REFUSED_ALIKE.keys())
def test_a_bad_value_in_a_binary_section_is_refused_as_the_same_value_in_json(client, case):
    feature, value = case
    rows = [ROWS[0], {**ROWS[1], feature: value}, ROWS[2]]
    binary = client.post(INFER, data=binary_body(rows)[0], headers=binary_body(rows)[1])
    # json.dumps writes NaN as the literal the V2 JSON path also reads.
    as_json = client.post(INFER, data=json.dumps(json_body(rows)))
    assert binary.status_code == 400, binary.text
    assert binary.get_json() == as_json.get_json()
    assert f"'{feature}' element 1" in binary.get_json()["error"]


@pytest.mark.parametrize("section, words", [
    (b"\x02\x00\x00\x00E\xff" * 3, "BYTES data is not UTF-8"),
    (strings_section(["E", "G"]) + b"\x05\x00\x00\x00E", "BYTES data is cut short"),
    (strings_section(["E", "G"]) + b"\x01\x00", "BYTES data is cut short"),
], ids=["not UTF-8", "a string cut short", "a length cut short"])
def test_a_malformed_bytes_section_is_a_400_naming_the_input(client, section, words):
    raw, headers = binary_body(ROWS[:3], {"color": section})
    answer = client.post(INFER, data=raw, headers=headers)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": f"input 'color': {words}"}
