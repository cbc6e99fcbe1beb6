"""docs/configuration.md is generated from eebench/config.py and conf/, and documents every key and option."""

from __future__ import annotations

from conftest import ROOT

from eebench.conf_files import group_files, leading_comment
from eebench.config_doc import (
    EXTRA_MEANINGS,
    GENERATE_COMMAND,
    LAUNCHER_GROUP,
    PRESET_GROUP,
    all_keys,
    all_yaml_comments,
    configuration_markdown,
    group_fields,
    undocumented_keys,
)
from eebench.field_docs import field_comments

CONFIG_DOC = ROOT / "docs" / "configuration.md"


def test_configuration_reference_is_generated_from_the_code():
    stale = f"docs/configuration.md is stale; run {GENERATE_COMMAND}"
    assert CONFIG_DOC.read_text(encoding="utf-8") == configuration_markdown(), stale


def test_every_config_key_has_a_meaning_and_a_row():
    assert undocumented_keys() == [], "comment these fields in eebench/config.py (or their key in the group's YAML)"
    text = CONFIG_DOC.read_text(encoding="utf-8")
    assert [key.name for key in all_keys() if f"| `{key.name}` |" not in text] == []


def test_every_option_file_says_what_it_is():
    groups = [*group_fields(), PRESET_GROUP, LAUNCHER_GROUP]
    silent = [f"conf/{group}/{path.name}" for group in groups for path in group_files(group) if not leading_comment(path)]
    assert silent == [], "start these files with a comment saying what the option is"
    text = CONFIG_DOC.read_text(encoding="utf-8")
    assert all(f"| `{path.stem}`" in text for group in groups for path in group_files(group))


def test_fallback_meanings_are_only_for_real_keys_without_their_own_comment():
    keys = {key.name: key for key in all_keys()}
    assert set(EXTRA_MEANINGS) <= set(keys), f"no such config keys: {sorted(set(EXTRA_MEANINGS) - set(keys))}"
    yaml_comments = all_yaml_comments()
    redundant = [
        name for name in EXTRA_MEANINGS if field_comments(keys[name].owner).get(keys[name].field.name) or yaml_comments.get(name)
    ]
    assert redundant == [], f"these keys now have their own comment; drop them from EXTRA_MEANINGS: {redundant}"
