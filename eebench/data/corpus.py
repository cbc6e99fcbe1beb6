"""Real prose for head training and calibration, split by document into disjoint train / calibration / held-out sets.

The offline default is the English documentation inside the Django sdist on PyPI (BSD licensed,
hundreds of pages of prose, unrelated to the BIG-bench evaluation tasks).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import tarfile
from pathlib import Path

import torch

from eebench.cache import get_or_build, path_digest
from eebench.config import DataConfig
from eebench.downloads import pip_download
from eebench.errors import EEBenchError, require

DJANGO_SDIST = ("Django==5.2.8", "django-5.2.8.tar.gz")
SPLITS = ("train", "calibration", "heldout")
_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)\s*(?:<([^`>]*)>)?`")


def _role_text(match: re.Match) -> str:
    """`:ref:`sessions <topics-http-sessions>`` -> "sessions"; `:setting:`DEBUG`` -> "DEBUG"."""
    return match.group(1).strip() or (match.group(2) or "").lstrip("~/")


def rst_to_prose(text: str) -> str:
    """Keep the running text of a reStructuredText page: drop directives, code blocks and heading rules."""
    paragraphs, current = [], []
    for line in text.splitlines():
        indented = line.startswith((" ", "\t"))
        rule = bool(line) and len(set(line.strip())) == 1 and line.strip()[0] in "=-~^*#+'\"`"
        if not line.strip() or indented or rule or line.startswith(".."):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(line.strip())
    if current:
        paragraphs.append(" ".join(current))
    prose = [_ROLE.sub(_role_text, p).replace("``", "") for p in paragraphs if len(p.split()) >= 12 and not p.endswith("::")]
    return "\n\n".join(prose)


def django_documents() -> dict[str, str]:
    """Prose of every documentation page, parsed once and cached as JSON."""
    directory = get_or_build("corpus", {"source": DJANGO_SDIST[0]}, _write_django_documents, code=(__name__,))
    return json.loads((directory / "documents.json").read_text())


def _write_django_documents(tmp: Path) -> None:
    sdist = pip_download(DJANGO_SDIST[0], DJANGO_SDIST[1], sdist=True)
    docs = {}
    with tarfile.open(sdist) as archive:
        for member in archive:
            if "/docs/" in member.name and member.name.endswith(".txt") and "/_theme/" not in member.name:
                text = rst_to_prose(archive.extractfile(member).read().decode("utf-8", "replace"))
                if text:
                    docs[member.name.split("/docs/", 1)[1]] = text
    (tmp / "documents.json").write_text(json.dumps(docs))


def local_documents(path: Path) -> dict[str, str]:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_text(errors="replace") for p in sorted(path.rglob("*.txt"))}
    paragraphs = [p.strip() for p in path.read_text(errors="replace").split("\n\n") if p.strip()]
    return {f"{path.name}#{i}": p for i, p in enumerate(paragraphs)}


def hf_documents(spec: str) -> dict[str, str]:
    from datasets import load_dataset

    name, _, config = spec.partition(":")
    try:
        rows = load_dataset(name, config or None, split="train")["text"]
    except Exception as exc:
        raise EEBenchError(
            f"data.source='hf:{spec}' could not be loaded ({type(exc).__name__}); it needs the hub and a 'text' column"
        ) from None
    return {f"{name}#{i}": text for i, text in enumerate(rows) if text.strip()}


def load_documents(source: str) -> dict[str, str]:
    if source == "bundled:django-docs":
        return django_documents()
    if source.startswith("hf:"):
        return hf_documents(source[3:])
    path = Path(source).expanduser()
    require(
        path.exists(),
        f"data.source={source!r} does not exist; allowed: bundled:django-docs, a .txt file or directory, hf:<dataset>",
    )
    return local_documents(path)


def source_identity(source: str) -> str | None:
    """What a data source's contents are, for cache keys: a local file or directory is hashed, so an
    edited file never reuses heads trained on its old text."""
    if source == "bundled:django-docs":
        return DJANGO_SDIST[0]
    if source.startswith("hf:"):
        return source
    path = Path(source).expanduser()
    return path_digest(path) if path.exists() else None


def in_train(doc_id: str) -> bool:
    """80% of documents train the heads, by a hash of their id: the same for every seed, so no seed's
    calibration or held-out documents were ever trained on."""
    return int(hashlib.sha256(doc_id.encode()).hexdigest(), 16) % 10 >= 2


def split_documents(docs: dict[str, str], seed: int = 0) -> dict[str, list[str]]:
    """Train by hash; calibration and held-out drawn at random (seeded) from the other documents, half each.

    Every split lists its documents in a seeded random order, since ``token_blocks`` reads them from the
    front: the calibration text is a random sample, not the alphabetically first pages."""
    rng = random.Random(seed)
    train = sorted(doc_id for doc_id in docs if in_train(doc_id))
    rest = sorted(doc_id for doc_id in docs if not in_train(doc_id))
    rng.shuffle(train)
    rng.shuffle(rest)
    half = (len(rest) + 1) // 2
    chosen = {"train": train, "calibration": rest[:half], "heldout": rest[half:]}
    return {name: [docs[doc_id] for doc_id in chosen[name]] for name in SPLITS}


def token_blocks(tokenizer, texts: list[str], seq_len: int, count: int, split: str) -> torch.Tensor:
    """Concatenate documents (EOS between them) and cut ``count`` blocks of ``seq_len`` tokens."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + eos
        if len(stream) >= seq_len * count:
            break
    available = len(stream) // seq_len
    require(
        available >= count,
        f"data split {split!r} has {len(stream)} tokens, too short for {count} x {seq_len}; "
        f"lower data.{split if split != 'calibration' else 'calibration'}_sequences or data.seq_len, or give more text",
    )
    return torch.tensor(stream[: count * seq_len]).view(count, seq_len)


def prepare_splits(cfg: DataConfig, tokenizer, seed: int = 0) -> dict[str, torch.Tensor]:
    splits = split_documents(load_documents(cfg.source), seed)
    counts = {"train": cfg.train_sequences, "calibration": cfg.calibration_sequences, "heldout": cfg.heldout_sequences}
    return {name: token_blocks(tokenizer, splits[name], cfg.seq_len, counts[name], name) for name in SPLITS}
