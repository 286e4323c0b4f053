"""The README documents every engine setting by its field name."""

from __future__ import annotations

from pathlib import Path

from flows.flags import markdown_settings_table
from nst_core import Settings
from tasks.storage.records import folder_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_names_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{name}`" not in text]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_readme_embeds_the_current_settings_table() -> None:
    """``stylebatch settings`` prints the table; the README must hold the same one."""
    assert markdown_settings_table() in README.read_text(encoding="utf-8")


def test_readme_embeds_the_current_pair_folder_table() -> None:
    """The pair folder's files and record fields, from ``tasks.storage.records``."""
    assert folder_table() in README.read_text(encoding="utf-8")
