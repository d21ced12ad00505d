"""The Fast DDS transport for a graph whose processes all run on one host (demo, tests, benchmarks).

640x480 images are larger than Fast DDS's default shared-memory segment (512 KB), so with the
default transports best-effort images between processes go over fragmented UDP and are mostly lost
on a loaded machine. Shared memory alone, with room for 4 MB messages, carries them. Not LARGE_DATA:
its TCP channels can deadlock when a participant is destroyed mid-read (Fast DDS 3.2.3, the PyPI
wheels; fixed upstream in eProsima/Fast-DDS#6066), and the hang holds the GIL. Across hosts,
LARGE_DATA is still the answer (README).
"""

LOCAL_TRANSPORTS = "SHM?max_msg_size=4MB&sockets_size=32MB"
"""Value for ``FASTDDS_BUILTIN_TRANSPORTS`` (read by Fast DDS when a participant is created)."""

if __name__ == "__main__":  # scripts/demo.sh reads it from here
    print(LOCAL_TRANSPORTS)
