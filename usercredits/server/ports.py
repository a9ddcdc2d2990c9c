"""Listening sockets bound before a command says where it listens: a port something else
holds fails at once, with nothing started and nothing announced."""

import socket


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A socket listening on `host`'s first address (port 0: one the system picks);
    OSError if the port is taken or the host unknown."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=1024, reuse_port=reuse_port)
