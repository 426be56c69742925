"""A real redis-server on a free loopback port, which a test can kill and start again."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from mosaic_httpx_auth.testing._tls import ServerCertificateFiles

# `make test` and CI install Debian's redis-server (.ci/ensure-redis-server); a run without
# one fails rather than skipping the Redis tests.
EXECUTABLE = os.environ.get("MOSAIC_TEST_REDIS_SERVER", "redis-server")


class RedisServer:
    """One redis-server process with no persistence, listening on 127.0.0.1 only: over TLS
    alone, presenting `tls`'s certificate, if given one."""

    def __init__(self, *, tls: ServerCertificateFiles | None = None) -> None:
        executable = shutil.which(EXECUTABLE)
        if executable is None:
            raise RuntimeError(
                f"the Redis tests need {EXECUTABLE} on PATH: run .ci/ensure-redis-server, or "
                "set MOSAIC_TEST_REDIS_SERVER to one"
            )
        self._executable = executable
        self.tls = tls
        """The certificate, key and CA it presents and trusts over TLS; None: no TLS."""
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers.

        Another process (a suite running beside this one) may take the port drawn free before
        redis-server binds it: redis-server then exits, and a first start draws another port.
        The server that answers must be this one, not whoever holds the port.
        """
        for _ in range(3):
            if self._start_on_port():
                self._started = True
                return
            if self._started:  # a restart keeps its port: the URL is in use
                break
            self.port = _free_port()
        raise RuntimeError(f"redis-server could not listen on 127.0.0.1:{self.port}")

    @property
    def url(self) -> str:
        """Its URL: ``rediss://`` over TLS."""
        return f"{'redis' if self.tls is None else 'rediss'}://127.0.0.1:{self.port}/0"

    def _start_on_port(self) -> bool:
        """Whether a redis-server started on `port` answers; False if it exited (port taken)."""
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            listen = [
                *("--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"),
                *("--tls-cert-file", str(self.tls.cert_path)),
                *("--tls-key-file", str(self.tls.key_path)),
                *("--tls-ca-cert-file", str(self.tls.client_ca_path)),
            ]
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = self._process = subprocess.Popen(  # noqa: S603 (our own arguments)
            [self._executable, *listen, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while process.poll() is None:
            try:
                if self._answering_process() == process.pid:
                    return True
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.01)
        return False

    def _answering_process(self) -> int:
        """The process id of the server answering on `port`."""
        with self._connect() as connection:
            connection.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            info = _bulk(connection.makefile("rb"))
        return int(info.split(b"process_id:")[1].split(b"\r\n")[0])

    def kill(self) -> None:
        """Kill it at once, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def command(self, *words: str) -> bytes:
        """Send one command and return the first line of the answer: for setup and checks."""
        request = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
        with self._connect() as connection:
            connection.sendall(request.encode())
            return connection.makefile("rb").readline().rstrip(b"\r\n")

    def dump(self) -> bytes:
        """Every key and string value in the server, as one blob: what an attacker could read."""
        with self._connect() as connection:
            reader = connection.makefile("rb")
            connection.sendall(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
            keys = [_bulk(reader) for _ in range(int(reader.readline()[1:]))]
            blob = b"\n".join(keys)
            for key in keys:
                connection.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
                blob += b"\n" + (_bulk(reader) or b"")
            return blob

    def _connect(self) -> socket.socket:
        """A connection to it; over TLS, to whatever name its CA vouches for (the tests
        give it certificates for other names on purpose)."""
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if self.tls is None:
            return connection
        context = ssl.create_default_context(cafile=self.tls.client_ca_path)
        context.check_hostname = False
        try:
            return context.wrap_socket(connection)
        except BaseException:
            connection.close()
            raise


def _bulk(reader: BinaryIO) -> bytes:
    length = int(reader.readline()[1:])
    return b"" if length < 0 else reader.read(length + 2)[:-2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
