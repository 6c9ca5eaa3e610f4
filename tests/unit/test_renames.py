"""devkit.renames on serving's moves: what another branch's file written for the old layout
becomes, and that a file already on the new layout is left as it is."""

from __future__ import annotations

from devkit.processes import REPO_ROOT
from devkit.renames import rewritten

OLD_ROLES = '''"""Roles (see serving.verdict.VerdictSender)."""
from . import champion_metrics, role_metrics
from .challenger import Challenger
from .validation import encode  # noqa: F401  (imported for its side effect)


def later():
    from serving.metrics import SHED  # the app has chosen the folder
    import serving.holder
    monkeypatch.setattr("serving.shadow.GATHER_SECONDS", 1.0)
    return serving.holder.ModelHolder, "python -m serving.validator", "serving/templates"


PROBE = """
from serving import containment, config
"""
'''


def roles(text: str) -> str:
    """The text as serving/roles.py, which moved to serving/challenger/roles.py."""
    return rewritten(text, "serving.roles", "serving.challenger.roles", False, REPO_ROOT)


def test_an_old_layout_module_is_rewritten_to_the_new_places():
    """Relative and absolute imports, lazy ones, strings with attributes, prose; comments kept."""
    new = roles(OLD_ROLES)
    assert "from serving.telemetry import champion_metrics" in new
    assert "from serving.challenger import role_metrics" in new
    assert "from serving.challenger.candidate import Challenger" in new
    assert "from serving.inputs.checks import encode  # noqa: F401  (imported for" in new
    assert "from serving.telemetry.metrics import SHED  # the app has chosen the folder" in new
    assert "import serving.swap.holder\n" in new and "serving.swap.holder.ModelHolder" in new
    assert '"serving.challenger.shadow.GATHER_SECONDS"' in new
    assert "-m serving.swap.validator" in new and "serving.challenger.experiment_log." in new
    assert '"serving/templates"' in new
    assert "\nfrom serving.swap import containment\nfrom serving import config\n" in new  # a -c


def test_a_module_already_on_the_new_layout_is_left_alone():
    """Rewriting twice changes nothing: `serving.challenger` (a module become a package) with a
    submodule after it is the new layout, not the old module."""
    once = roles(OLD_ROLES)
    assert roles(once) == once
    text = (REPO_ROOT / "serving" / "challenger" / "roles.py").read_text(encoding="utf-8")
    assert roles(text) == text  # as the command reads it: a moved file at its old place
