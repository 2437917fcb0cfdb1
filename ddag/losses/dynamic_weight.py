"""DDAG's dynamic weight of the graph term.

Paper section 3.4: the graph loss starts with weight 0 and, after every epoch, gets
w_G = 1 / (1 + mean over that epoch of the instance-level loss (id + triplet + part)).
Reference: mangye16/DDAG `train_ddag.py` (`w_G`).
"""


class DynamicGraphWeight:
    """Running state of w_G: accumulates the instance loss during an epoch, updates at its end.

    Args:
        initial: weight used during the first epoch (reference 0).
    """

    def __init__(self, initial: float = 0.0):
        self.value = float(initial)
        self._sum = 0.0
        self._count = 0

    def accumulate(self, instance_loss: float) -> None:
        """Add one step's instance-level loss (sum of the non-graph terms)."""
        self._sum += float(instance_loss)
        self._count += 1

    def end_epoch(self) -> float:
        """Set w_G from the epoch's mean instance loss, start a new epoch, return w_G."""
        if self._count:
            self.value = 1.0 / (1.0 + self._sum / self._count)
        self._sum, self._count = 0.0, 0
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "sum": self._sum, "count": self._count}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
        self._sum = float(state.get("sum", 0.0))
        self._count = int(state.get("count", 0))
