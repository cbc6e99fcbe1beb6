"""Lets lm-eval's own CLI find the model: ``lm_eval --model eebench --model_args run_dir=DIR,threshold=0.9``.

lm-eval discovers no third-party models, so eebench installs ``eebench_lm_eval.pth``, which calls
``install()`` when Python starts. That adds one import hook and imports nothing: only when a process
imports lm-eval's model registry is the name ``eebench`` registered there, as a lazy "module:class"
placeholder, so even then torch and the model code load only if the model is used. Top level, not
inside the eebench package, because ``import eebench`` would itself import lm-eval at every start.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder

REGISTRY_MODULE = "lm_eval.api.registry"
MODEL_NAME, MODEL_TARGET = "eebench", "eebench.evaluation.lm:EarlyExitLM"


def register(registry_module) -> None:
    registry = getattr(registry_module, "model_registry", None)
    if registry is not None and MODEL_NAME not in registry:  # lm-eval < 0.4.10 has no lazy registry
        registry.register(MODEL_NAME, target=MODEL_TARGET)


class _RegisterAfterImport(MetaPathFinder):
    """Finds lm-eval's registry with the other finders, then registers eebench once it has loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != REGISTRY_MODULE:
            return None
        sys.meta_path.remove(self)  # one-shot; also keeps find_spec below from finding us again
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            load = spec.loader.exec_module

            def exec_and_register(module):
                load(module)
                register(module)

            spec.loader.exec_module = exec_and_register
        return spec


def install() -> None:
    if REGISTRY_MODULE in sys.modules:
        register(sys.modules[REGISTRY_MODULE])
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
