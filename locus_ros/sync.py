"""The approximate time synchronizer lives in ``locus_core.pipeline.sync`` (shared with bag replay);
this name stays for existing imports."""

from locus_core.pipeline.sync import ApproximateTimeSynchronizer, SyncStats

__all__ = ["ApproximateTimeSynchronizer", "SyncStats"]
