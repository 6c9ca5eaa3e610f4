"""Open Inference Protocol (V2) request bodies on the wire: the typed request, or V2Error.

The JSON is decoded by msgspec into typed structs in one pass; a body it refuses (NaN literals,
bad UTF-8, a wrong shape) is parsed again to say what is wrong. Tensor data is JSON, or binary
after the JSON header (the `Inference-Header-Content-Length` extension that tritonclient uses
by default): each binary input's `parameters.binary_data_size` bytes, in order. A binary
section is read without a Python step per element: numbers as a numpy array over the body's
bytes, strings as serving.oip.sections reads them when each is 1 to 255 bytes without NUL
(categories, numbers as text), else walked one by one here.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import numpy as np

from serving.http.api import parse_json

from ..errors import InvalidInput
from .sections import Strings, short_strings

NUMBERS = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4",
           "INT16": "<i2", "INT8": "<i1", "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2",
           "UINT8": "<u1"}
_NAME_SHOWN = 64  # characters of a client's name echoed back in an error


class V2Error(Exception):
    """A request the protocol refuses; `status` is its HTTP code (400, 404, 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


class Tensor(msgspec.Struct, gc=False):
    """One input tensor as the protocol writes it.

    `data` is the JSON list; a binary section's elements replace it once read: a numpy array
    of its numbers, or its strings (Strings, or a list when they are not short).
    """

    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class Output(msgspec.Struct, gc=False):
    """One requested output."""

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct, gc=False):
    """The body of POST /v2/models/{name}/infer."""

    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[Output] | None = None


_DECODER = msgspec.json.Decoder(InferRequest)
_LENGTH = struct.Struct("<I").unpack_from  # a BYTES element's length prefix


def shown(name: str) -> str:
    """A client's name, quoted and bounded, for an error message."""
    return repr(name[:_NAME_SHOWN] + ("..." if len(name) > _NAME_SHOWN else ""))


def parse_request(raw: bytes, header_length: str | None) -> InferRequest:
    """The typed request of a body (binary tensors attached as data); V2Error naming the field."""
    binary = memoryview(b"")
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or \
                int(header_length) > len(raw):
            raise V2Error("Inference-Header-Content-Length must be a number of bytes within "
                          "the body")
        # The binary sections are read in place: numbers stay arrays over the body's bytes.
        raw, binary = raw[:int(header_length)], memoryview(raw)[int(header_length):]
    try:
        request = _DECODER.decode(raw)
    except msgspec.DecodeError:  # NaN literals, bad UTF-8, or a wrong shape: say which
        request = _convert(raw)
    if header_length is not None:
        _attach_binary(request.inputs, binary)
    return request


def _convert(raw: bytes) -> InferRequest:
    try:
        body = parse_json(raw)
    except InvalidInput as exc:
        raise V2Error(f"the body {exc.errors[0].message}") from None
    try:
        return msgspec.convert(body, InferRequest)
    except msgspec.ValidationError as exc:
        raise V2Error(f"the request is malformed: {exc}") from None


def _attach_binary(inputs: list[Tensor], binary: memoryview) -> None:
    """Give each tensor with binary_data_size its slice of the bytes after the header."""
    offset = 0
    for tensor in inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise V2Error(f"input {shown(tensor.name)}: binary_data_size does not fit the body")
        tensor.data = _from_binary(tensor, binary[offset:offset + size])
        offset += size
    if offset != len(binary):
        raise V2Error("the body holds binary data that no input's binary_data_size claims")


def _from_binary(tensor: Tensor, chunk: memoryview) -> np.ndarray | Strings | list[str]:
    """The elements of one binary tensor: little-endian numbers, or length-prefixed strings."""
    if tensor.datatype in NUMBERS:
        dtype = np.dtype(NUMBERS[tensor.datatype])
        if len(chunk) % dtype.itemsize:
            raise V2Error(f"input {shown(tensor.name)}: {len(chunk)} bytes are not whole "
                          f"{tensor.datatype} values")
        return np.frombuffer(chunk, dtype=dtype)
    if tensor.datatype != "BYTES":
        raise V2Error(f"input {shown(tensor.name)}: datatype {shown(tensor.datatype)} is not "
                      "supported")
    short = short_strings(chunk)
    return _strings(tensor, chunk) if short is None else short


def _strings(tensor: Tensor, section: memoryview) -> list[str]:
    """A BYTES section's strings, one length prefix at a time; V2Error naming what is wrong."""
    chunk = bytes(section)
    items: list[str] = []
    append, at, end = items.append, 0, len(chunk)
    try:
        while at < end:
            stop = at + 4 + _LENGTH(chunk, at)[0]
            if stop > end:
                raise V2Error(f"input {shown(tensor.name)}: BYTES data is cut short")
            append(chunk[at + 4:stop].decode())
            at = stop
    except struct.error:  # fewer than 4 bytes left for a length
        raise V2Error(f"input {shown(tensor.name)}: BYTES data is cut short") from None
    except UnicodeDecodeError:
        raise V2Error(f"input {shown(tensor.name)}: BYTES data is not UTF-8") from None
    return items
