"""Which code produced a result: the git commit of the fer_bench checkout, and whether it had changes."""
from __future__ import annotations

import subprocess
from pathlib import Path


def git_state() -> tuple[str, bool | None]:
    """(commit, has uncommitted changes) of the fer_bench checkout; ``("", None)`` outside git."""
    import fer_bench

    repo = Path(fer_bench.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        return commit, (bool(status) if commit else None)
    except (OSError, subprocess.SubprocessError):
        return "", None
