"""DDS transport for the node tests: every process of the test graph runs on this host
(``locus_ros.transport`` says why shared memory, and not LARGE_DATA)."""

import os

from locus_ros.transport import LOCAL_TRANSPORTS

os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", LOCAL_TRANSPORTS)
