"""The root of every error the library raises on purpose.

Each subpackage defines its own errors (``locus_core.data.errors`` and so on) as subclasses, so a
caller can catch one subsystem's failures or all of them, and the CLI can turn any of them into a
one-line message instead of a traceback.
"""

import re


class LocusError(Exception):
    """Base class: a problem with the user's input, files or configuration, stated in words."""


class ConfigError(LocusError):
    """A configuration file or override names an unknown key or holds a bad value."""


def torch_load_failure(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one sentence, for a message naming the file.

    Its weights-only failures open with advice to load with ``weights_only=False`` (running the
    file's code), which is no help for a file that is not what was asked for: the unpickler's own
    reason follows it ("Unsupported global: GLOBAL argparse.Namespace ...").
    """
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "corrupt")
    return re.split(r"\.\s", first, maxsplit=1)[0]
