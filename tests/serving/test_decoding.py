"""The typed batch decoder: the same matrix as the slow path for every valid batch, and nothing
for any batch the slow path refuses (so that the slow path can name the fields)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.errors import InvalidInput
from serving.inputs.checks import parse_body
from serving.inputs.decoding import decoder
from serving.inputs.schema import DIAMONDS
from tests.serving.test_validation import junk, valid_instances
from tests.support.diamonds import VALID


def _raw(body) -> bytes:
    """The body as a client would send it (stdlib json: any integer, NaN as the literal)."""
    return json.dumps(body).encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(valid_instances(), min_size=1, max_size=20))
def test_every_valid_batch_gives_the_slow_paths_matrix(instances):
    """Same numbers, same codes, same column order, bit for bit."""
    body = {"instances": instances}
    matrix, batch = decoder(DIAMONDS, 1000).decode(_raw(body))
    expected, _ = parse_body(body, DIAMONDS, 1000)
    assert batch is True and matrix.dtype == np.float64
    assert np.array_equal(matrix, expected)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from([*DIAMONDS.names, "extra"]), junk, max_size=10)
                | st.just(VALID), min_size=0, max_size=4),
       st.dictionaries(st.sampled_from(["extra", "instances2"]), junk, max_size=1))
def test_a_batch_the_slow_path_refuses_is_left_to_it(rows, beside):
    """Whatever is wrong (a value, a field, the size, a key beside instances): no fast answer."""
    body = {"instances": rows, **beside}
    try:
        parse_body(body, DIAMONDS, 3)
    except InvalidInput:
        assert decoder(DIAMONDS, 3).decode(_raw(body)) is None
    else:
        matrix, _ = decoder(DIAMONDS, 3).decode(_raw(body))
        assert np.array_equal(matrix, parse_body(body, DIAMONDS, 3)[0])


def test_a_single_instance_takes_the_small_row_path():
    """One instance is not decoded here: the slow path's small-row code is faster for it."""
    assert decoder(DIAMONDS, 10).decode(_raw(VALID)) is None
