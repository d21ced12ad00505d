"""The transform buffer lives in ``locus_core.data.formats.tf`` (one implementation for the node and
the bag readers); this name stays for existing imports."""

from locus_core.data.formats.tf import TransformBuffer

__all__ = ["TransformBuffer"]
