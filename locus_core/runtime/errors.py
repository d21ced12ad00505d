"""Errors of the export and inference runtimes."""

from locus_core.errors import LocusError


class EngineError(LocusError):
    """An inference engine cannot be created or run (bad device name, broken engine file, ...)."""


class RuntimeUnavailable(EngineError):
    """The runtime asked for is not installed or has no device here; the engine falls back."""


class ExportError(LocusError):
    """Exporting a model failed, or the exported graph disagrees with PyTorch."""
