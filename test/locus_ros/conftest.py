"""DDS transport for the node tests.

640x480 images are larger than Fast DDS's default shared-memory segment, so with the default
transports best-effort (sensor-data QoS) images between processes go over fragmented UDP and are
mostly lost on a loaded machine. LARGE_DATA (shared memory + TCP for user data) is Fast DDS's
answer and what the README recommends on robots; every participant of the test graph uses it.
"""

import os

os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
