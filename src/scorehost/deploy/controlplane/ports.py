"""The control plane's two ports, checked before anything starts on them.

A port another program holds is refused at once, in words that name the flag of `scorehost controlplane start`
that moves it (`--api-port`, `--gateway-port`): the gateway's own error speaks of `scorehost gateway --port`, and
a connect-based readiness check would take the other program for our gateway.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from scorehost.errors import ScorehostError
from scorehost.sockets import bind_refusal

__all__ = ["API_PORT", "GATEWAY_PORT", "ControlPlanePort", "api_port", "gateway_port"]

API_PORT = 5100  # the defaults of `scorehost controlplane start`
GATEWAY_PORT = 5080


@dataclass(frozen=True, slots=True)
class ControlPlanePort:
    """One port of the control plane: where, which flag of `scorehost controlplane start` sets it, what it is."""

    host: str
    port: int
    flag: str
    role: str
    default: int
    zero_picks: bool = False  # whether `flag 0` means any free port

    def listen(self, backlog: int = 128) -> socket.socket:
        """A socket listening on host:port (SO_REUSEADDR, as werkzeug's own); PortInUse naming the flag."""
        sock = socket.socket(self._family(), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(backlog)
        except OSError as error:
            sock.close()
            raise self.refusal(error) from None
        return sock

    def check_free(self) -> None:
        """PortInUse, naming the flag, unless a server could listen on host:port now.

        The probe binds as the gateway's first socket does (SO_REUSEADDR, no SO_REUSEPORT): a port in TIME_WAIT
        after our own gateway passes; one that another program listens on does not."""
        self.listen(backlog=1).close()

    def refusal(self, error: OSError) -> ScorehostError:
        """The error to show for `error`, raised binding this port."""
        default = " (the default)" if self.port == self.default else ""
        return bind_refusal(
            error,
            self.host,
            self.port,
            where=f"{self.role} port {self.port}{default} on {self.host}",
            option=f"`scorehost controlplane start {self.flag} PORT`",
            choose=f"`scorehost controlplane start {self.flag} PORT`"
            + (" (0 picks a free one)" if self.zero_picks else ""),
        )

    def _family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


def api_port(host: str, port: int) -> ControlPlanePort:
    """The API's port (`--api-port`)."""
    return ControlPlanePort(host, port, "--api-port", "the control plane's API", API_PORT, zero_picks=True)


def gateway_port(host: str, port: int) -> ControlPlanePort:
    """The gateway's port (`--gateway-port`): every endpoint's scoring URI."""
    return ControlPlanePort(host, port, "--gateway-port", "the gateway's", GATEWAY_PORT)
