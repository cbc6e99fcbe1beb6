import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist every worker, and every run.py it starts, computes on one core: tiny models gain nothing from
# intra-op threads, and two workers' threads spinning on two cores cost many times what they give (see
# engine_support.single_thread). Set before torch is imported, so torch's default follows it.
PARALLEL_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if PARALLEL_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from eebench.backbones.tiny import TINY_ARCHS, make_tiny_model  # noqa: E402
from eebench.reuse import forget  # noqa: E402

if PARALLEL_WORKER:
    import torch

    torch.set_num_threads(1)  # also where a plugin imported torch before this file


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """One tiny random model directory per supported architecture, built once per test session."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: make_tiny_model(arch, root / arch) for arch in TINY_ARCHS}


@pytest.fixture(params=TINY_ARCHS)
def tiny_model_dir(request, tiny_model_dirs):
    return tiny_model_dirs[request.param]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EEBENCH_CACHE", str(tmp_path / "cache"))
    forget()  # nor does a test see objects an earlier test's sweep points shared in this process (eebench/reuse.py)


ROOT = Path(__file__).resolve().parents[1]
WORDS = "model layer token exit head early confident the a of to and in is that it for on with as was".split()


def _write_prose(path: Path) -> Path:
    rng = random.Random(0)
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(60)) + "." for _ in range(300)]
    path.write_text("\n\n".join(paragraphs))
    return path


def _write_task(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"q": f"Is {w} a word?", "choices": ["yes", "no"], "label": i % 2} for i, w in enumerate(WORDS[:12])]
    data = root / "mc.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    (root / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n"
    )
    return root


def benchmark_module(name: str):
    """A script of benchmarks/ imported as a module (registered in sys.modules: its dataclasses look it up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """For engine tests on tiny models (``pytestmark = pytest.mark.usefixtures("one_thread")``): see single_thread."""
    from engine_support import single_thread

    with single_thread():
        yield


def run_eebench(args, cwd, env):
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def sweep_env(tmp_path, tiny_model_dirs):
    env = {**os.environ, "EEBENCH_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "offline"}
    common = [
        "experiment=smoke",
        f"backbone.name_or_path={tiny_model_dirs['gpt2']}",
        "backbone.name=tiny-gpt2",
        "backbone.dtype=float32",  # pinned: auto decides per machine (tests/test_precision.py covers bfloat16)
        f"data.source={_write_prose(tmp_path / 'prose.txt')}",
        "eval.suite=lm_eval",
        f"eval.include_path={_write_task(tmp_path / 'tasks')}",
        "eval.tasks=[tiny_mc]",
        "timing.threads=1",  # not the physical cores: see PARALLEL_WORKER (no sweep test asserts a thread count)
    ]
    return env, common


def point_results(sweep: Path, order_by: str) -> list[dict]:
    """The results of every point of a sweep (folders are named by configuration), each with its run_dir."""
    runs = [{**json.loads(p.read_text()), "run_dir": str(p.parent)} for p in sweep.glob("*/results.json")]
    return sorted(runs, key=lambda r: r[order_by])
