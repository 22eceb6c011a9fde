import socket

from tooling._components import _ephemeral_ports, free_port


def test_free_ports_are_outside_the_kernels_range_for_outgoing_connections():
    ephemeral = _ephemeral_ports()
    for _ in range(50):
        port = free_port()
        assert port not in ephemeral
        with socket.socket() as s:  # and free: a listener can take it
            s.bind(("127.0.0.1", port))
            s.listen()


def test_a_port_taken_by_a_listener_is_not_chosen(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        choices = iter([busy, busy, busy + 1])
        monkeypatch.setattr("tooling._components.random.choice", lambda pool: next(choices))
        assert free_port() != busy
