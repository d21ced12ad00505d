"""DDS transport for the node tests.

640x480 images are larger than Fast DDS's default shared-memory segment (512 KB), so with the
default transports best-effort images between processes go over fragmented UDP and are mostly lost
on a loaded machine. Every process of the test graph runs on this host, so shared memory alone,
with room for 4 MB messages, carries them. Not LARGE_DATA: its TCP channels can deadlock when a
participant is destroyed mid-read (Fast DDS 3.2.3, the PyPI wheels; fixed upstream in
eProsima/Fast-DDS#6066), and the hang holds the GIL, so no test timeout can end it.
"""

import os

os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "SHM?max_msg_size=4MB&sockets_size=32MB")
