"""``free_port`` for harnesses that choose several ports before starting any server."""

from __future__ import annotations

import socket

from keygate_demo.server_process import free_port


def test_never_hands_out_a_port_twice() -> None:
    # The kernel gives a just-closed port to the next bind(0) often enough that 1,000 plain
    # binds repeat some (about 35 repeats); a Sentinel deployment or a cluster whose
    # nodes got one port twice would lose a node at start.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


def test_the_port_is_free_to_listen_on() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
