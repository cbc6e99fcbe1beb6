"""Files written atomically: a temp file beside the target, renamed onto it once complete."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # ``.<name>.<random>.tmp``: what ``atomic_target`` writes before renaming it onto <name>


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temp file beside ``path`` to write to: renamed onto ``path`` when the block ends, removed if it raises, so
    readers see either the old file or the complete new one, never a partial file (a full disk included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file in the same directory so os.replace is a same-filesystem atomic rename; created under the umask
    # (mkstemp's 0600 would make a shared sweep's files unreadable to the others).
    tmp_name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    os.close(os.open(tmp_name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Temp files a process killed while writing left in ``folder`` (its point is being relaunched, so none is live)."""
    orphans = [p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans
