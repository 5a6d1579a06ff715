import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# keep tests single-threaded per process: the suite runs on 2 cores, DDP tests start 2 ranks
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m fer_bench ARGS`` in a subprocess (DDP re-launches the command per rank)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "fer_bench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"fer-bench {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def free_port() -> int:
    """A free TCP port on the loopback interface (for gloo / torchrun rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eye_discs_photo(angle: float, size: int = 112):
    """(a 220x180 grey photo with black discs on the eyes of a face turned by ``angle`` degrees, and its 5
    points, subject's right eye first): the face is the template seen through a known similarity."""
    import cv2
    import numpy as np

    from fer_bench.data.align import template_points

    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = (template_points("arcface-loose") * size - size / 2) @ rot.T * 1.6 + (110, 90)
    img = np.full((180, 220, 3), 150, np.uint8)
    for k, (x, y) in enumerate(pts):
        cv2.circle(img, (int(round(x * 16)), int(round(y * 16))), 6 * 16, (0, 0, 0) if k < 2 else (90, 90, 90), -1,
                   cv2.LINE_AA, 4)
    return img, pts
