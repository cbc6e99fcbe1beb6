"""eebench: a benchmark harness for self-supervised early-exit LLM inference.

``import eebench`` registers the lm-eval model ``eebench`` (lazily: lm-eval imports the class only
when the model is requested), so ``lm_eval.simple_evaluate(model="eebench", model_args="run_dir=...")`` works.
"""

from __future__ import annotations

import eebench_lm_eval_hook

__version__ = "0.1.0"
__all__ = ["EarlyExitModel", "__version__"]


def __getattr__(name: str):
    if name == "EarlyExitModel":  # heavy imports (torch, transformers) only when asked for
        from eebench.model import EarlyExitModel

        return EarlyExitModel
    raise AttributeError(f"module 'eebench' has no attribute {name!r}")


# One registration mechanism: eebench_lm_eval_hook. lm-eval (0.4.13) discovers no third-party models (no entry
# points), so for its plain CLI (`lm_eval --model eebench`) the installed eebench_lm_eval.pth calls install() at
# interpreter start; a process that imports eebench without that .pth (a source checkout on PYTHONPATH) gets the
# same call here. install() imports nothing: the name is registered when lm-eval's registry module loads.
eebench_lm_eval_hook.install()
