"""Objects shared by the points of a sweep in one process: reused for the same key, rebuilt when it changes."""

from __future__ import annotations

import gc
import os
import weakref

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig
from eebench.reuse import files_state, reuse


class Built:
    """A weak-referenceable stand-in for a loaded object."""


def test_the_same_key_reuses_and_a_new_key_rebuilds_and_lets_the_old_go():
    builds = []

    def build():
        builds.append(Built())
        return builds[-1]

    first = reuse("thing", ("a", 1), build)
    assert reuse("thing", ("a", 1), build) is first and len(builds) == 1
    old = weakref.ref(first)
    del first
    builds.clear()
    second = reuse("thing", ("a", 2), build)
    gc.collect()
    assert old() is None, "the object of the old key is still held"
    assert second is builds[0]
    assert reuse("other", ("a", 2), Built) is not second  # kinds never share


def test_files_state_changes_when_a_file_is_rewritten_or_added(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = files_state([tmp_path])
    assert files_state([tmp_path]) == before
    stat = (tmp_path / "config.json").stat()
    os.utime(tmp_path / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = files_state([tmp_path])
    assert touched != before
    (tmp_path / "extra.safetensors").write_bytes(b"x")
    assert files_state([tmp_path]) != touched


def test_a_shared_backbone_is_reloaded_when_its_files_change(tiny_model_dirs):
    cfg = BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype="float32")
    shared = load_backbone(cfg, "cpu", shared=True)
    assert load_backbone(cfg, "cpu", shared=True) is shared
    assert load_backbone(cfg, "cpu") is not shared  # a caller that does not ask to share gets its own
    config = tiny_model_dirs["llama"] / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    try:
        assert load_backbone(cfg, "cpu", shared=True) is not shared
    finally:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_keep_holds_the_most_recently_used_few():
    first, second = reuse("pair", 1, Built, keep=2), reuse("pair", 2, Built, keep=2)
    assert reuse("pair", 1, Built, keep=2) is first and reuse("pair", 2, Built, keep=2) is second
    reuse("pair", 1, Built, keep=2)  # 1 is now the most recent: a third key lets 2 go
    reuse("pair", 3, Built, keep=2)
    assert reuse("pair", 1, Built, keep=2) is first and reuse("pair", 2, Built, keep=2) is not second
