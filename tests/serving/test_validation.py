"""Validation: valid input becomes the model's matrix; anything else, errors naming each field."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.errors import BatchTooLarge, InvalidInput
from serving.inputs.checks import encode, parse_body, parse_form
from serving.inputs.schema import DIAMONDS, CategoricalFeature, from_metadata
from tests.support.diamonds import VALID


def valid_instances():
    """Any instance within the schema's bounds and categories."""
    fields = {}
    for f in DIAMONDS.features:
        if isinstance(f, CategoricalFeature):
            fields[f.name] = st.sampled_from(f.categories)
        else:
            fields[f.name] = st.floats(f.minimum, f.maximum, allow_nan=False) | \
                st.integers(math.ceil(f.minimum), math.floor(f.maximum))
    return st.fixed_dictionaries(fields)


def test_a_valid_instance_becomes_one_row_in_schema_order():
    """Numbers as given, categories as their codes, columns in schema order."""
    matrix, batch = parse_body(VALID, DIAMONDS, 10)
    assert batch is False and matrix.dtype == np.float64 and matrix.shape == (1, 9)
    color, clarity = DIAMONDS.feature("color"), DIAMONDS.feature("clarity")
    assert matrix[0].tolist() == [0.31, color.codes["E"], clarity.codes["SI1"], 61.5, 55.0, 420,
                                  4.3, 4.32, 2.65]


@settings(max_examples=60, deadline=None)
@given(st.lists(valid_instances(), min_size=1, max_size=20))
def test_every_valid_batch_is_accepted(instances):
    """Whatever valid values, a batch becomes a finite matrix of one row per instance."""
    matrix, batch = parse_body({"instances": instances}, DIAMONDS, 1000)
    assert batch and matrix.shape == (len(instances), 9) and np.isfinite(matrix).all()


junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*DIAMONDS.names, "extra"]), junk, max_size=10))
def test_junk_is_refused_with_named_fields_or_accepted(body):
    """No input makes validation fail other than by InvalidInput naming known fields."""
    try:
        matrix, _ = parse_body(body, DIAMONDS, 1000)
    except InvalidInput as exc:
        assert exc.errors
        assert {e.field for e in exc.errors} <= {*DIAMONDS.names, "extra", "instances"}
    else:
        assert np.isfinite(matrix).all()


def test_a_batch_over_the_limit_is_refused_before_it_is_read():
    """Too many instances: BatchTooLarge naming instances."""
    with pytest.raises(BatchTooLarge) as caught:
        parse_body({"instances": [VALID] * 3}, DIAMONDS, 2)
    assert caught.value.errors[0].field == "instances"


def test_bounds_are_inclusive():
    """The minimum and the maximum themselves are valid."""
    low = {**VALID, "carat": 0.1, "x": 0}
    high = {**VALID, "carat": 6.0, "price": 30000}
    assert encode(DIAMONDS, [low, high], single=False).shape == (2, 9)


def test_form_strings_are_converted_and_errors_merged():
    """The form's text: numbers parsed, each bad field named once, the rest still checked."""
    form = {**{k: str(v) for k, v in VALID.items()}, "carat": "heavy", "depth": "",
            "price": "1e9", "color": "Q"}
    with pytest.raises(InvalidInput) as caught:
        parse_form(form, DIAMONDS)
    errors = {e.field: e.message for e in caught.value.errors}
    assert errors == {"carat": "must be a number", "depth": "is required",
                      "price": "must be between 100 and 30000",
                      "color": "must be one of D, E, F, G, H, I, J"}


def test_a_valid_form_gives_the_instance_and_its_row():
    """A correct form gives typed values and the same row as the JSON API."""
    instance, matrix = parse_form({k: str(v) for k, v in VALID.items()}, DIAMONDS)
    assert instance["carat"] == 0.31 and instance["color"] == "E"
    assert matrix.tolist() == parse_body(VALID, DIAMONDS, 1)[0].tolist()


def test_a_metadata_schema_codes_categories_by_position():
    """metadata.json's category lists define the codes the pipeline was trained with."""
    schema = from_metadata({"features": DIAMONDS.to_json(), "classes": ["Gold", "Silver"]})
    assert schema.feature("clarity").codes["IF"] == 0.0
    assert schema.names == DIAMONDS.names


@pytest.mark.parametrize("metadata", [
    {"features": [], "classes": ["Gold", "Silver"]},
    {"features": DIAMONDS.to_json(), "classes": ["Gold"]},
    {"features": [{"name": "carat", "type": "number", "min": 5, "max": 1}], "classes": ["a", "b"]},
    {"features": [{"name": "c", "type": "blob"}], "classes": ["a", "b"]},
    {"classes": ["Gold", "Silver"]},
])
def test_a_malformed_metadata_schema_is_refused(metadata):
    """An unusable schema is a ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=r"metadata\.json|feature"):
        from_metadata(metadata)


def test_seed_codes_follow_the_label_encoders():
    """In the seed layout, category codes are the LabelEncoder's (alphabetical) positions."""
    schema = DIAMONDS.with_codes({"clarity": sorted(DIAMONDS.feature("clarity").categories)})
    clarity = schema.feature("clarity")
    assert clarity.codes["I1"] == 0.0 and clarity.codes["IF"] == 1.0
    assert clarity.categories[0] == "IF"  # the form still lists them best first
