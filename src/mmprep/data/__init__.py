"""Dataset-scale tools: manifests counted from metadata, sequence packing, packed batches.

Imports nothing heavy: pyarrow loads only for Parquet, ray only in :mod:`mmprep.integrations.ray`.
"""

from __future__ import annotations

from .manifest import DatasetCounts, count_dataset, read_counts
from .pack import PackResult, pack, pack_stream

__all__ = ["DatasetCounts", "PackResult", "count_dataset", "pack", "pack_stream", "read_counts"]
