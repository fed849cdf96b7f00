"""Shapes and regions: validation, and a region's row-major flat indices as runs.

A *region* is a tuple of ``slice`` objects, one per leading dimension (missing
trailing dimensions are taken whole), exactly what ``array[region]`` accepts.
The stream gives the value at flat index ``i`` of the *whole* tensor, so a
region is generated from the flat indices it covers.  Those indices come in
*runs* of consecutive integers: :func:`region_runs` finds the longest run
length ``L`` and the start of every run, so executors fill ``L`` values at a
time and memory never exceeds the output plus one chunk.
"""

from __future__ import annotations

import math

import numpy as np

from weightinit.common import validate as _validate

__all__ = ["normalize_shape", "normalize_region", "region_runs", "RegionPlan"]


def normalize_shape(shape, arg: str = "shape") -> tuple[int, ...]:
    """Validate a shape (see :func:`weightinit.common.validate.shape`)."""
    return _validate.shape(shape, arg)


def normalize_region(region, shape: tuple[int, ...]) -> tuple[tuple[int, int, int], ...] | None:
    """Validate a region against ``shape`` (see :func:`weightinit.common.validate.region`)."""
    return _validate.region(region, shape)


class RegionPlan:
    """The flat indices of a region, as runs of ``run_length`` consecutive integers.

    Attributes:
      out_shape: the shape of ``x[region]``.
      run_length: length of each run (the product of the trailing dimensions
        that are contiguous).
      n_runs: number of runs.
    """

    def __init__(self, shape: tuple[int, ...], region) -> None:
        shape = _validate.shape(shape)
        self.shape = shape
        ranges = normalize_region(region, shape)
        if ranges is None:
            ranges = tuple((0, d, 1) for d in shape)
        self.ranges = ranges
        self.lengths = tuple(len(range(*r)) for r in ranges)
        self.out_shape = self.lengths
        self.size = math.prod(self.lengths)
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        self.strides = strides
        # Find the contiguous tail: dims t+1.. are whole, dim t has step 1.
        nd = len(shape)
        t = nd - 1
        while t >= 0 and ranges[t] == (0, shape[t], 1):
            t -= 1
        if t < 0:  # whole tensor
            self.lead = 0
            self.run_length = self.size
            self.run_offset = 0
        elif ranges[t][2] == 1:
            self.lead = t
            self.run_length = self.lengths[t] * math.prod(shape[t + 1 :])
            self.run_offset = ranges[t][0] * strides[t]
        else:
            self.lead = t + 1
            self.run_length = math.prod(shape[t + 1 :])
            self.run_offset = 0
        self.n_runs = math.prod(self.lengths[: self.lead]) if self.size else 0

    @property
    def first_run_start(self) -> int:
        """Flat index of the region's first value: the start of the only run when ``n_runs == 1``.

        ``run_offset`` is only the contribution of the contiguous tail; leading
        dimensions of length one add their own offsets.
        """
        return int(self.run_starts(0, 1)[0]) if self.size else 0

    def run_starts(self, first: int, count: int) -> np.ndarray:
        """Flat start index of runs ``first .. first + count - 1`` (uint64)."""
        idx = np.arange(first, first + count, dtype=np.uint64)
        starts = np.full(count, self.run_offset, dtype=np.uint64)
        for d in range(self.lead - 1, -1, -1):
            n = np.uint64(self.lengths[d])
            start, _, step = self.ranges[d]
            pos = idx % n
            idx = idx // n
            coord = np.uint64(start) + pos * np.uint64(step) if step > 0 else np.uint64(start) - pos * np.uint64(-step)
            starts += coord * np.uint64(self.strides[d])
        return starts


def region_runs(shape: tuple[int, ...], region) -> RegionPlan:
    """Plan the generation of ``x[region]`` for a tensor ``x`` of ``shape``."""
    return RegionPlan(shape, region)
