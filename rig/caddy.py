"""Caddy's ACME server (`acme_server`, Smallstep's CA inside Caddy): a second ACME implementation
that behaves unlike Pebble (a failed challenge leaves its authorization pending; a CA that lost an
account answers HTTP 500).

Its validator fetches HTTP-01 answers from port 80, which the rig's edge holds on the host, so
Caddy runs in network and mount namespaces of its own (`unshare -nm`): there port 80 is free,
and a private /etc/hosts makes the test names resolve to its loopback. Two bridges on Unix
sockets join it to the host's loopback: the host's `acme_port` to its ACME listener, and its
port 80 (Caddy's reverse proxy) to the host's HTTP-01 responder.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rig.state import spawn, wait_until

_CADDYFILE = """\
{{
\tadmin off
\tskip_install_trust
\tlocal_certs
\tauto_https disable_redirects
\tdefault_sni localhost
}}
https://localhost {{
\tbind unix/{acme_socket}
\tacme_server
}}
http://:80 {{
\tbind 127.0.0.1
\treverse_proxy unix/{http01_socket}
}}
"""


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (sink, source):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class Bridge:
    """Accepts on `listener` and joins each connection to a fresh one from `connect`."""

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
        self.listener = listener
        self.connect = connect
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                accepted, _ = self.listener.accept()
            except OSError:
                return  # closed by `close`
            try:
                upstream = self.connect()
            except OSError:
                accepted.close()
                continue
            for source, sink in ((accepted, upstream), (upstream, accepted)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes `accept`
        self.listener.close()
        self._thread.join(timeout=5)


def _tcp_listener(port: int) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def _unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(64)
    return listener


def _unix_connection(path: Path) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        connection = socket.socket(socket.AF_UNIX)
        connection.connect(str(path))
        return connection

    return connect


@dataclass
class CaddyAcmeServer:
    """One Caddy with `acme_server`, its state in `work_dir` (`wipe` forgets it all: accounts,
    orders and its root)."""

    name: str
    work_dir: Path
    acme_port: int  # on the host's loopback
    http01_port: int  # the host's HTTP-01 responder, where Caddy's port 80 leads
    names: tuple[str, ...] = ("caddy.example.test",)  # resolve to Caddy's loopback
    process: subprocess.Popen[bytes] | None = None
    _bridges: list[Bridge] = field(default_factory=list)

    @property
    def directory_url(self) -> str:
        return f"https://localhost:{self.acme_port}/acme/local/directory"

    @property
    def ca_bundle(self) -> Path:
        """A copy of Caddy's current root (a wiped Caddy makes a new one), for clients to trust."""
        return self.work_dir / "root.pem"

    @property
    def _data(self) -> Path:
        """Caddy's data directory: its CA (`pki/`) and its ACME server's database."""
        return self.work_dir / "xdg-data" / "caddy"

    def start(self) -> int:
        work = self.work_dir
        work.mkdir(parents=True, exist_ok=True)
        acme_socket, http01_socket = work / "acme.sock", work / "http01.sock"
        acme_socket.unlink(missing_ok=True)
        (work / "hosts").write_text(f"127.0.0.1 localhost {' '.join(self.names)}\n")
        (work / "Caddyfile").write_text(
            _CADDYFILE.format(acme_socket=acme_socket, http01_socket=http01_socket)
        )
        self._bridges = self._bridges or [
            Bridge(_tcp_listener(self.acme_port), _unix_connection(acme_socket)),
            Bridge(
                _unix_listener(http01_socket),
                lambda: socket.create_connection(("127.0.0.1", self.http01_port)),
            ),
        ]
        inside = (
            f"mount --bind {work / 'hosts'} /etc/hosts && ip link set lo up && "
            f"exec caddy run --adapter caddyfile --config {work / 'Caddyfile'}"
        )
        self.process = spawn(
            self.name,
            ["unshare", "--net", "--mount", "sh", "-c", inside],
            env={"XDG_DATA_HOME": str(work / "xdg-data"), "XDG_CONFIG_HOME": str(work / "xdg")},
        )
        root = self._data / "pki" / "authorities" / "local" / "root.crt"
        wait_until(lambda: self._running() and root.is_file(), 30, f"{self.name}'s root")
        shutil.copyfile(root, self.ca_bundle)
        wait_until(self.answers, 30, self.name)
        return self.process.pid

    def _running(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see its log in the rig's state directory")
        return True

    def answers(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        try:
            with urllib.request.urlopen(self.directory_url, context=context, timeout=5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the process and bridges this object started."""
        self._stop_process()
        for bridge in self._bridges:
            bridge.close()
        self._bridges = []

    def _stop_process(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self, *, wipe: bool) -> None:
        """A new Caddy behind the same bridges; `wipe`d, it has forgotten every account."""
        self._stop_process()
        if wipe:
            shutil.rmtree(self._data, ignore_errors=True)
        self.start()
