"""The documents of the lm-eval task YAMLs eebench writes into its cache (the BIG-bench and prose suites).

lm-eval resolves a relative ``data_files`` path against the caller's working directory, so such a YAML would have
to name its documents by absolute path: the cache's own location, which differs where a shared cache is mounted
elsewhere, and with it every key computed from the YAMLs. Instead the YAMLs name their documents relative to the
cache root (``cache.portable``) and lm-eval loads them with ``load_docs`` (``custom_dataset: !function ...``),
resolved under the root of the process that reads them: the YAMLs and the keys are the same wherever the cache lives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from eebench.cache import in_cache, portable

FUNCTION_TAG = "!function"  # lm-eval's YAML tag for a function it imports


class _Function(str):
    """A value written as ``!function <dotted name>``."""


class TaskDumper(yaml.SafeDumper):
    """Writes task YAMLs, ``_Function`` values with lm-eval's tag."""


class TaskLoader(yaml.SafeLoader):
    """Reads task YAMLs without importing anything: a ``!function`` value stays its dotted name."""


TaskDumper.add_representer(_Function, lambda dumper, value: dumper.represent_scalar(FUNCTION_TAG, str(value)))
TaskLoader.add_constructor(FUNCTION_TAG, lambda loader, node: loader.construct_scalar(node))


def docs_fields(docs: Path) -> dict[str, Any]:
    """The task config fields that make lm-eval read ``docs`` (a JSON-lines file in the cache) as the test split."""
    return {
        "dataset_path": "json",  # what lm-eval records; ``custom_dataset`` loads the documents
        "custom_dataset": _Function(f"{__name__}.load_docs"),
        "dataset_kwargs": {"cache_file": portable(docs)},
        "test_split": "test",
    }


def write_task_yaml(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.dump(config, Dumper=TaskDumper, sort_keys=False, allow_unicode=True), encoding="utf-8")


def read_task_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=TaskLoader)  # noqa: S506 - TaskLoader is a SafeLoader


def docs_path(config: dict[str, Any]) -> Path:
    """The documents file a task config written by ``docs_fields`` reads, under this process's cache root."""
    return in_cache(config["dataset_kwargs"]["cache_file"])


def load_docs(cache_file: str, **_metadata: Any):
    """lm-eval's ``custom_dataset``: called with the task's metadata and ``dataset_kwargs``."""
    import datasets

    return datasets.load_dataset("json", data_files={"test": str(in_cache(cache_file))})


class _NoMetadataHint(logging.Filter):
    """lm-eval warns, for every task with a ``custom_dataset``, that kwargs could be passed with ``--metadata``:
    advice about its own dataset functions, noise for these."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_NoMetadataHint())
