"""Binding the listening socket: its own step, taken before the daemon creates anything else."""

from __future__ import annotations

import errno
import socket

LISTEN_BACKLOG = 512


class BindError(Exception):
    """The address cannot be listened on; the message is one line for the user."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (``::`` takes IPv4 too where the system allows it)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"host={host!r} is not an address camd can listen on ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} is in use (another camd?); choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise BindError(
                f"port {port} on {host} needs privileges camd does not have; choose a port above 1023 with --port"
            ) from None
        raise BindError(f"cannot listen on host={host!r} port={port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock
