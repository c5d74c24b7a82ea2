"""SSH into a guest with paramiko: key auth, pinned host key, timeouts on everything."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import InfraError

# paramiko logs every refused attempt while a guest boots; our own errors say what failed.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


@dataclass
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SshLost(InfraError):
    """The SSH session failed under a command: connection dropped, no channel opened."""


class CommandTimeout(InfraError):
    def __init__(self, message: str, host: str = ""):
        super().__init__(message)
        self.host = host  # the VM the command ran on


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Accept only the host key the image was built with."""

    def __init__(self, expected: paramiko.PKey):
        self.expected = expected

    def missing_host_key(self, client, hostname, key) -> None:
        if key.get_base64() != self.expected.get_base64():
            raise paramiko.SSHException(f"host key mismatch for {hostname}")


def load_public_key(path: Path) -> paramiko.PKey:
    kind, blob = path.read_text().split()[:2]
    return paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob))


class Ssh:
    def __init__(self, name: str, port: int, key: Path, host_key: Path):
        self.name = name
        self.port = port
        self.key = paramiko.Ed25519Key.from_private_key_file(str(key))
        self.host_key = load_public_key(host_key)
        self.client: paramiko.SSHClient | None = None
        self.history: list[CommandResult] = []

    def connect(self, deadline: float, alive=lambda: True) -> None:
        """Retry until the guest's sshd answers or the deadline passes."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not alive():
                raise InfraError(f"{self.name}: VM exited while waiting for SSH")
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_PinnedHostKey(self.host_key))
            try:
                client.connect("127.0.0.1", port=self.port, username="root", pkey=self.key,
                               timeout=2, banner_timeout=3, auth_timeout=5,
                               allow_agent=False, look_for_keys=False)
                self.client = client
                return
            except (OSError, paramiko.SSHException, EOFError) as e:
                last = e
                client.close()
                time.sleep(0.1)
        raise InfraError(f"{self.name}: SSH on 127.0.0.1:{self.port} not ready: {last}")

    def run(self, command: str, timeout: float = 60.0, check: bool = False) -> CommandResult:
        if self.client is None:
            raise InfraError(f"{self.name}: not connected")
        start = time.monotonic()
        chan = self._open(command)
        chan.settimeout(timeout)
        out, err = bytearray(), bytearray()
        try:
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready():
                    while chan.recv_ready():
                        out += chan.recv(65536)
                    while chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                    break
                else:
                    if time.monotonic() - start > timeout:
                        raise TimeoutError()
                    time.sleep(0.01)
        except TimeoutError as e:
            chan.close()
            raise CommandTimeout(f"{self.name}: `{command}` timed out after {timeout}s",
                                 host=self.name) from e
        except (paramiko.SSHException, OSError, EOFError) as e:
            chan.close()
            raise SshLost(f"{self.name}: SSH failed during `{command}`: "
                          f"{type(e).__name__}: {e}") from e
        result = CommandResult(command, chan.recv_exit_status(), out.decode(errors="replace"),
                               err.decode(errors="replace"), time.monotonic() - start)
        chan.close()
        self.history.append(result)
        if check and not result.ok:
            raise InfraError(f"{self.name}: `{command}` exited {result.exit_status}: "
                             f"{result.stderr.strip()[-500:]}")
        return result

    def stream(self, command: str) -> "LineStream":
        """Start a long-running command and read its stdout line by line."""
        if self.client is None:
            raise InfraError(f"{self.name}: not connected")
        return LineStream(self._open(command))

    def _open(self, command: str) -> paramiko.Channel:
        """A channel running command. paramiko's own failures (a guest too wedged to open
        a channel: "Timeout opening channel") become SshLost, which the runner knows how
        to judge, instead of escaping as a harness error."""
        if self.client is None:
            raise InfraError(f"{self.name}: not connected")
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise SshLost(f"{self.name}: SSH connection lost")
        try:
            chan = transport.open_session(timeout=10)
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise SshLost(f"{self.name}: cannot run `{command}` over SSH: "
                          f"{type(e).__name__}: {e}") from e
        return chan

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class LineStream:
    """stdout of a guest command that runs until closed (e.g. bqlab-watch)."""

    def __init__(self, chan: paramiko.Channel):
        self.chan = chan
        self._file = chan.makefile("r")

    def __iter__(self):
        try:
            for line in self._file:
                yield line.rstrip("\n")
        except (OSError, paramiko.SSHException, EOFError):
            return  # closed under us: the reader just stops

    def stderr(self) -> str:
        data = bytearray()
        while self.chan.recv_stderr_ready():
            data += self.chan.recv_stderr(65536)
        return data.decode(errors="replace")

    def close(self) -> None:
        self.chan.close()
