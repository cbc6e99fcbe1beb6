"""The index fallback used when pip refuses a download (BIG-bench's sdist under pip >= 25)."""

import hashlib
import io

import pytest

from eebench import downloads
from eebench.errors import EEBenchError


def _fake_index(monkeypatch, payload: bytes, digest: str):
    page = f'<a href="https://files.example/pkgs/demo-1.0.tar.gz#sha256={digest}">demo-1.0.tar.gz</a>'

    def urlopen(url, timeout=0):
        return io.BytesIO(page.encode() if url.endswith("/demo/") else payload)

    monkeypatch.setattr(downloads.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(
        downloads.subprocess, "run", lambda *a, **k: downloads.subprocess.CompletedProcess(a, 1, "", "ERROR: refused")
    )


def test_fallback_downloads_and_checks_sha256(monkeypatch):
    payload = b"sdist bytes"
    _fake_index(monkeypatch, payload, hashlib.sha256(payload).hexdigest())
    path = downloads.pip_download("demo==1.0", "demo-1.0.tar.gz", sdist=True)
    assert path.read_bytes() == payload
    assert downloads.pip_download("demo==1.0", "demo-1.0.tar.gz") == path  # cached: no second download


def test_fallback_rejects_a_corrupt_file(monkeypatch):
    _fake_index(monkeypatch, b"tampered", hashlib.sha256(b"original").hexdigest())
    with pytest.raises(EEBenchError, match="sha256"):
        downloads.pip_download("demo==1.0", "demo-1.0.tar.gz")
    assert not list(downloads.downloads_dir().iterdir())
