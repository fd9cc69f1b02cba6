"""A small TCP proxy a test can cut and restore, to make a server (PostgreSQL) briefly unreachable."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    """Listens on 127.0.0.1 (``port``) and forwards every connection to ``target``.

    ``cut()`` drops every open connection and, until ``restore()``, accepts new ones without forwarding or
    answering anything: to a client the server is unreachable, and it waits until its own connect timeout.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[socket.socket] = set()   # both ends of every forwarded connection
        self._held: list[socket.socket] = []      # accepted while cut, never answered
        self._up = True
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        with self._lock:
            self._up = False
            links, self._links = self._links, set()
        for sock in links:
            _drop(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True
            held, self._held = self._held, []
        for sock in held:
            _drop(sock)

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.restore()
        self._acceptor.join(timeout=5)
        self._listener.close()

    # -- inside ------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if not self._up:
                    self._held.append(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _drop(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._links.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="tcp-proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._links.difference_update((src, dst))
            _drop(src)
            _drop(dst)


def _drop(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
