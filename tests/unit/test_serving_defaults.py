"""Serving states each default once: the dataclass defaults equal its settings table's.

serving/config.py reads every setting through its table (variable -> parser, default, meaning)
into frozen dataclasses that also carry defaults (for tests and code that build them directly);
the two must never drift (VALIDATION_WAIT once said 1 in the table and 20.0 in the dataclass).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from serving import config

CLASSES = {cls.__name__: cls for cls in (config.ServingConfig, config.MpmConfig,
                                         config.ChallengerConfig, config.FrontConfig)}


def read_fields() -> list[tuple[str, str, str]]:
    """(dataclass, field, variable) for each `field=_read(env, "VARIABLE")` of serving/config.py."""
    found = []
    for call in ast.walk(ast.parse(inspect.getsource(config))):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id in CLASSES):
            continue
        for keyword in call.keywords:
            value = keyword.value
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id == "_read" and isinstance(value.args[1], ast.Constant)):
                found.append((call.func.id, keyword.arg, value.args[1].value))
    return found


def test_the_reading_code_is_found():
    """The walk finds the settings read into each dataclass (so the next test checks them)."""
    read = read_fields()
    assert {cls for cls, _, _ in read} == set(CLASSES)
    assert ("ServingConfig", "validation_wait", "VALIDATION_WAIT") in read
    assert len(read) >= 40


@pytest.mark.parametrize("cls,name,variable", read_fields())
def test_a_dataclass_default_is_the_tables_default(cls, name, variable):
    """Where the dataclass has a default, it is what the table's default parses to."""
    field = {f.name: f for f in dataclasses.fields(CLASSES[cls])}[name]
    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
        return  # no second default to drift
    parse, default, _ = config.SETTINGS[variable]
    expected = None if default is None else parse(default)
    assert field.default == expected, (
        f"{cls}.{name} defaults to {field.default!r}, the table's {variable} to {default!r}")
