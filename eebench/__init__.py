"""eebench: a benchmark harness for self-supervised early-exit LLM inference.

``import eebench`` registers the lm-eval model ``eebench`` (lazily: lm-eval imports the class only
when the model is requested), so ``lm_eval.simple_evaluate(model="eebench", model_args="run_dir=...")`` works.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["EarlyExitModel", "__version__"]


def _register_lm_eval_model() -> None:
    try:
        from lm_eval.api.registry import model_registry
    except ImportError:  # lm-eval < 0.4.10 has no lazy registry: import the class, which registers it
        try:
            import eebench.evaluation.lm  # noqa: F401
        except ImportError:
            pass
        return
    if "eebench" not in model_registry:
        model_registry.register("eebench", target="eebench.evaluation.lm:EarlyExitLM")


def __getattr__(name: str):
    if name == "EarlyExitModel":  # heavy imports (torch, transformers) only when asked for
        from eebench.model import EarlyExitModel

        return EarlyExitModel
    raise AttributeError(f"module 'eebench' has no attribute {name!r}")


_register_lm_eval_model()
