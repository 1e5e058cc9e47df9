"""Ports of the servers the tests start. Never a fixed number: pytest-xdist runs several test
processes at once (make test), and any other program on the machine may hold a fixed port.

- A server this process binds itself (http.server, socketserver) binds port 0 and reads the
  port back from `server_address`: the system picks a free one, with no window for a race.
- A server in another process that must be told a number (redis-server, PostgreSQL) gets
  `free_port()`, and its starter checks that its own process is the one that came to listen.
"""

import random
import socket

# Below Linux's default ephemeral range (32768-60999), so that no outgoing connection's local
# port takes the number between the probe and the server's bind, or while a server restarts.
PORT_RANGE = range(20000, 32768)


def free_port(*, attempts: int = 100) -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to at the moment of asking."""
    for port in random.sample(PORT_RANGE, attempts):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found in {attempts} tries in {PORT_RANGE}")
