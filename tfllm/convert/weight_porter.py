"""Copies named source tensors into model variables and proves the copy was complete."""

import numpy as np

from tfllm.convert.errors import ConversionError


class WeightPorter:
    """Hands out source tensors by name and records which model variables were assigned.

    `take(name)` marks a tensor as used; `assign(variable, value)` checks the
    shape. `finish(models)` raises if any source tensor was left unused
    (except names in `ignored`) or any model variable never assigned, naming
    them, so no load is silently partial.

    Example:
    >>> porter = WeightPorter({"w": np.ones((2, 3))}, source="ckpt")
    >>> porter.assign(dense.kernel, porter.take("w"))
    >>> porter.finish([dense])
    """

    def __init__(self, tensors, source):
        self.tensors = dict(tensors)
        self.source = source
        self.used = set()
        self.ignored = {}  # name -> why it is not needed
        self.assigned = set()
        self.kept = {}  # variable path -> why it keeps its initial value

    def has(self, name):
        return name in self.tensors

    def take(self, name):
        if name not in self.tensors:
            raise ConversionError(f"{self.source}: missing weight {name!r}")
        self.used.add(name)
        return self.tensors[name]

    def ignore(self, name, reason):
        """Mark a tensor as deliberately unused (e.g. a tied copy that was checked equal)."""
        self.ignored[name] = reason

    def keep(self, variables, reason):
        """Leave model variables as initialised on purpose (e.g. a head the checkpoint does not have)."""
        for variable in variables:
            self.assigned.add(id(variable))
            self.kept[variable.path] = reason

    def assign(self, variable, value):
        value = np.asarray(value)
        if tuple(variable.shape) != value.shape:
            raise ConversionError(
                f"{self.source}: shape mismatch for {variable.path}: model {tuple(variable.shape)}, "
                f"checkpoint {value.shape}"
            )
        variable.assign(value.astype(variable.dtype))
        self.assigned.add(id(variable))

    def finish(self, models):
        unused = sorted(set(self.tensors) - self.used - set(self.ignored))
        if unused:
            raise ConversionError(
                f"{self.source}: unexpected weights that this tfllm model has no place for: {unused[:20]}"
                + (f" (and {len(unused) - 20} more)" if len(unused) > 20 else "")
            )
        unassigned = [v.path for m in models for v in m.weights if id(v) not in self.assigned]
        if unassigned:
            raise ConversionError(f"{self.source}: model weights not found in the checkpoint: {unassigned[:20]}")
