"""A segmenter function for the kill test: it says it has started, then never returns."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np


def hang(array: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    Path(os.environ["UPS_TEST_MARKER"]).write_text("segmenting")
    threading.Event().wait()
    return np.zeros(array.shape, dtype=np.uint8)
