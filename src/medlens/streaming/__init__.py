"""Streaming batch inference over large archives: files found lazily, decoded in worker
processes (or Ray actors), predicted in batches, rows written as they come, resumable."""

from medlens.inference.discovery import iter_image_files
from medlens.streaming.stream import StreamSummary, stream_predict

__all__ = ["StreamSummary", "iter_image_files", "stream_predict"]
