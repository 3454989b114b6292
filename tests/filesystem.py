"""Real file-system faults for tests: a folder that refuses new files, even to root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def read_only_folder(path: Path) -> Iterator[None]:
    """Make `path` refuse new files for real: chmod for a normal user; as root (which ignores
    the mode bits) the immutable attribute (`chattr +i`), which binds root too."""
    as_root = os.geteuid() == 0
    chattr = shutil.which("chattr")
    assert not as_root or chattr, "running as root needs chattr to make a folder read-only"
    if as_root:
        subprocess.run([chattr, "+i", str(path)], check=True)
    else:
        path.chmod(0o555)
    try:
        yield
    finally:
        if as_root:
            subprocess.run([chattr, "-i", str(path)], check=True)
        else:
            path.chmod(0o755)
