"""Binary BYTES sections (serving.oip.wire): read in numpy, they are exactly what the length
prefixes say, or refused; category codes read from the bytes are the mapping's."""

from __future__ import annotations

import json
import struct

from hypothesis import given
from hypothesis import strategies as st

from serving.oip.wire import V2Error, parse_request

KNOWN = {"IF": 0.0, "VVS1": 1.0, "é": 2.0, "SI1": 3.0, "a long category name": 4.0,
         "A\x00": 5.0}


def section(strings: list[str]) -> bytes:
    """BYTES elements as the protocol writes them: a 4-byte length, then the UTF-8 bytes."""
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in strings)


def read(raw: bytes):
    """The data of a one-tensor request whose binary section is `raw`."""
    header = json.dumps({"inputs": [{"name": "color", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return parse_request(header + raw, str(len(header))).inputs[0].data


@given(st.lists(st.text(max_size=12) | st.text(min_size=250, max_size=300)
                | st.sampled_from(list(KNOWN)), max_size=20))
def test_a_bytes_section_reads_as_its_strings(strings):
    assert list(read(section(strings))) == strings


@given(st.binary(max_size=120) | st.lists(st.sampled_from(list(KNOWN))).map(section).map(
    lambda raw: raw[:len(raw) // 2]))
def test_any_bytes_read_as_a_section_are_their_one_reading_or_refused(raw):
    try:
        strings = list(read(raw))
    except V2Error as refused:
        assert "BYTES data is" in refused.message
    else:
        assert section(strings) == raw


@given(st.lists(st.sampled_from([*KNOWN, "A", "Z", "", "VVS"]), min_size=1, max_size=20))
def test_codes_read_from_the_bytes_are_the_mappings_or_none(strings):
    data = read(section(strings))
    coded = data.codes(KNOWN) if hasattr(data, "codes") else None
    expected = [KNOWN.get(s) for s in strings]
    short = all(0 < len(s.encode()) <= 8 and "\x00" not in s for s in strings)
    if None not in expected and short:
        assert coded is not None and coded.tolist() == expected
    else:
        assert coded is None or coded.tolist() == expected
