"""The request stream the simulator consumes, whichever source made it.

Arrays, not objects: one entry per request, sorted by ``t_s``.

    t_s       float64   arrival, simulated seconds from the start of the run (>= 0)
    user      int32     dense user index (the row of the top-K tables)
    session   int32     session index, dense
    truth_ptr int64     [n + 1] offsets into ``truth_items`` (CSR layout), or empty
    truth_items int32   items the user consumed next within the horizon (replayed logs);
                        empty for synthetic traffic, whose ground truth is latent preference
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["RequestStream"]


@dataclass(frozen=True, slots=True)
class RequestStream:
    t_s: npt.NDArray[np.float64]
    user: npt.NDArray[np.int32]
    session: npt.NDArray[np.int32]
    truth_ptr: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    truth_items: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def has_truth(self) -> bool:
        return bool(self.truth_ptr.shape[0] == len(self) + 1)

    def subset(self, keep: npt.NDArray[np.bool_]) -> RequestStream:
        """The requests where ``keep`` [n] is True, in order (their truth rows with them)."""
        if not self.has_truth:
            return RequestStream(self.t_s[keep], self.user[keep], self.session[keep])
        lengths = np.diff(self.truth_ptr)
        owner = np.repeat(np.arange(len(self)), lengths)
        ptr = np.zeros(int(keep.sum()) + 1, np.int64)
        np.cumsum(lengths[keep], out=ptr[1:])
        return RequestStream(
            self.t_s[keep],
            self.user[keep],
            self.session[keep],
            ptr,
            self.truth_items[keep[owner]],
        )
