"""The bytes of a multipart/x-mixed-replace stream: one part per frame, plain or in a chunk."""

from __future__ import annotations

BOUNDARY = "camdframe"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
_PART_HEAD = (
    b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n\r\n"
)


def part(jpeg: bytes, timestamp: float) -> bytes:
    """One JPEG as a part of the multipart body, with its capture time."""
    return b"".join((_PART_HEAD % (len(jpeg), timestamp), jpeg, b"\r\n"))


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk, for a response the front sends chunked."""
    return b"%x\r\n%b\r\n" % (len(data), data)
