"""Inference events as parallel numpy arrays (indices into the catalog's tuples)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Events:
    """Inference events as parallel arrays (indices into the catalog's tuples)."""

    t: np.ndarray  # int64 microseconds since the epoch
    user: np.ndarray
    session: np.ndarray
    feature: np.ndarray
    trigger: np.ndarray
    model: np.ndarray
    in_tok: np.ndarray
    out_tok: np.ndarray
    ua: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def take(self, index: np.ndarray) -> Events:
        return Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: Iterable[Events]) -> Events:
        parts = list(parts)
        return Events(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Events)}
        )
