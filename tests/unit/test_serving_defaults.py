"""Serving states each default once: in its settings rows, which the dataclass fields read.

serving/config.py declares every setting as a row of SETTINGS; each field of its frozen
dataclasses names the row it is read from (`setting("MAX_BATCH")`), and takes the row's parsed
default, so code and tests that build `ServingConfig(model_root=...)` get what an unset variable
gives. (VALIDATION_WAIT once said 1 in the table and 20.0 in a dataclass.)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from common.settings import ROW
from serving import config

CLASSES = (config.ServingConfig, config.MpmConfig, config.ChallengerConfig, config.FrontConfig)
# Fields that are not settings: the nested configs, and switches only tests turn.
NOT_SETTINGS = {"mpm", "challenger", "watch", "isolate_validation"}


def bound_rows() -> dict[str, str]:
    """Field (Class.field) -> the row it is read from, for every field of the config classes."""
    return {f"{cls.__name__}.{field.name}": field.metadata.get(ROW, "")
            for cls in CLASSES for field in dataclasses.fields(cls)}


def test_an_unset_environment_reads_as_the_dataclasses_defaults():
    """Reading nothing but MODEL_ROOT gives what building the config by hand gives."""
    assert config.from_env({"MODEL_ROOT": "/m"}) == config.ServingConfig(model_root=Path("/m"))
    assert config.front_from_env({}) == config.FrontConfig()
    assert config.ServingConfig(model_root=Path("/m")).validation_wait == 1.0
    assert config.FrontConfig().body_memory == 64 * config.MIB  # the row's "64", parsed


def test_every_field_is_read_from_a_row_so_none_has_a_default_of_its_own():
    """A field added with a literal default (a second one) and no row is refused here."""
    unbound = {name for name, row in bound_rows().items() if not row}
    assert {name.split(".")[1] for name in unbound} == NOT_SETTINGS
    assert {row for row in bound_rows().values() if row} <= set(config.SETTINGS)


def test_every_declared_setting_is_read():
    """Nothing declared goes unread (COMET_API_KEY_FILE is read into api_key, with its twin)."""
    assert set(config.SETTINGS) - set(bound_rows().values()) == {"COMET_API_KEY_FILE"}


def test_secrets_stay_out_of_repr():
    """The secret rows' fields are hidden from repr (and the rows from errors)."""
    shown = repr(config.ServingConfig(model_root=Path("/m"), reload_token="s3cret",
                                      webhook_secret="s3cret",
                                      mpm=config.MpmConfig(api_key="s3cret")))
    assert "s3cret" not in shown
