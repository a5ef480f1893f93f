"""Datasets: the in-memory :class:`Episodes`, the HDF5 format, generation and loaders."""

from cswm_lib.data.episodes import Episodes, to_float

__all__ = ["Episodes", "to_float"]
