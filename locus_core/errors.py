"""The root of every error the library raises on purpose.

Each subpackage defines its own errors (``locus_core.data.errors`` and so on) as subclasses, so a
caller can catch one subsystem's failures or all of them, and the CLI can turn any of them into a
one-line message instead of a traceback.
"""


class LocusError(Exception):
    """Base class: a problem with the user's input, files or configuration, stated in words."""


class ConfigError(LocusError):
    """A configuration file or override names an unknown key or holds a bad value."""
