"""Listening sockets for ``lmdeck serve --workers``: one per worker, all on one port (``SO_REUSEPORT``).

    sockets = reuseport_sockets("127.0.0.1", 4000, count=4)   # OSError when the port is taken

The kernel spreads new connections over the sockets by a hash of the connection's addresses,
so each worker accepts its share without waking the others. The parent keeps every socket
open: connections that arrive while a worker restarts wait in its socket's backlog for the new one.
"""

from __future__ import annotations

import socket

#: Connections waiting to be accepted, per socket.
BACKLOG = 2048


def reuseport_sockets(host: str, port: int, *, count: int) -> list[socket.socket]:
    """``count`` bound, listening, inheritable TCP sockets on ``host``:``port`` (port 0: one the kernel picks).

    Raises ``OSError`` (``EADDRINUSE``) when another process holds the port without ``SO_REUSEPORT``.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
            address = (address[0], sock.getsockname()[1], *address[2:])  # port 0: the others join the first
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
