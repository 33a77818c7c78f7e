"""The workspace database's URL, handed by the control plane to each `scorehost serve` process it starts.

A deployment serving `--model NAME:1` lays the model out from the registry the control plane uses. With the
default SQLite file, `--home` says where that is. With a database server (`SCOREHOST_REGISTRY_URL`, password
included), the URL must reach the serve process without being written anywhere: not in the deployment's spec
(which `deployments show` and the API answer), not in the state table, not in launch.json (which restarts it),
not on its command line (`ps`), not in its log; and not in the environment of the user's script, which runs in
the serve process's workers and may print `os.environ`, and whose /proc/PID/environ keeps what the process was
started with for as long as it runs.

So the URL goes through a pipe. At each start of a serve process (the first, every restart after a crash, every
start by a later control plane that adopted the generation) the backend writes the URL it was started with into a
fresh pipe, closes the writing end and passes the reading end as an inherited file descriptor; the only variable
set is its number, `SCOREHOST_REGISTRY_URL_FD=5`. `serve` reads the pipe and closes it before anything else,
removes the variable, and hands the URL to the registry that lays the models out, never to os.environ: its
workers, and the script in them, inherit neither the descriptor nor the URL. Nothing is passed while the control
plane uses the default SQLite file in its workspace, which `--home` names already.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from scorehost.errors import RegistryError

__all__ = ["URL_FD_VARIABLE", "pipe_url", "take_url"]

URL_FD_VARIABLE = "SCOREHOST_REGISTRY_URL_FD"
_MAX_URL = 60_000  # below any pipe's capacity: written whole before the child starts, so no one can block


def pipe_url(url: str) -> tuple[int, dict[str, str]]:
    """A pipe's reading end holding `url` (its writing end closed), and the variable naming it for the child:
    pass the descriptor with `pass_fds` and close it here once the child has started."""
    data = url.encode()
    if len(data) > _MAX_URL:
        raise RegistryError(f"the workspace database's URL is {len(data)} bytes long; at most {_MAX_URL} can be passed")
    read_end, write_end = os.pipe()
    try:
        written = 0
        while written < len(data):
            written += os.write(write_end, data[written:])
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end, {URL_FD_VARIABLE: str(read_end)}


def take_url(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The URL a control plane passed this process (None when none was), read once: the descriptor is closed and
    the variable removed from `environ` (default: os.environ), so nothing started later inherits either."""
    environ = os.environ if environ is None else environ
    value = environ.pop(URL_FD_VARIABLE, None)
    if value is None:
        return None
    try:
        fd = int(value)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        os.close(fd)
    except (ValueError, OSError) as error:
        reason = getattr(error, "strerror", None) or "not a descriptor number"
        raise RegistryError(
            f"{URL_FD_VARIABLE}={value} names no pipe to read the workspace database's URL from ({reason}); the "
            "control plane sets it for the deployments it starts: unset it, or set SCOREHOST_REGISTRY_URL instead"
        ) from None
    return b"".join(chunks).decode()
