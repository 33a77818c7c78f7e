"""The control plane's log: rotated by size, and never holding a key or a token.

Every line goes through `redact` on its way to the file (tracebacks included): query parameters that
carry credentials (`key=`, `token=`, `access_token=`, `code=`, `sig=`, ...), `Bearer` values and the
workspace's control-plane token are replaced by `[redacted]`. The API's access lines leave out query
strings' secrets the same way, and only changes (POST, PUT, DELETE) and errors are logged at INFO:
a CLI waiting for a deployment polls every quarter second, and its GETs would fill the log.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler

__all__ = ["AccessLog", "RedactingFormatter", "configure_logging", "redact"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
# A query parameter whose name says it carries a credential: key, api_key, subscription-key, token,
# access_token, id_token, code, sig, signature, secret, password, auth, credential...
_QUERY_SECRET = re.compile(
    r"(?i)([?&;][\w.\-\[\]%]*?(?:key|token|code|sig|signature|secret|passw(?:or)?d|pwd|auth|credential)"
    r"[\w.\-\[\]%]*=)[^&;#\s\"']*"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_SIGNIN_LINK = re.compile(r"(/console/signin/)[A-Za-z0-9_\-]+")  # the web console's one-time links


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with credentials in query strings and Authorization values, and each of `secrets`, redacted."""
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _SIGNIN_LINK.sub(rf"\1{REDACTED}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats a record as usual, then redacts the whole line (message, arguments and traceback)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(_FORMAT)
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def configure_logging(path: Path | None, max_bytes: int, backups: int, secrets: Iterable[str] = ()) -> None:
    """The root logger writes to `path` (rotated past `max_bytes`, keeping `backups` files), else to stderr;
    warnings go to the log too."""
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler()
    else:
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, delay=True)
    handler.setFormatter(RedactingFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


class AccessLog(WSGIRequestHandler):
    """Werkzeug's request handler, logging one redacted line per request to `scorehost.controlplane.access`."""

    _logger = logging.getLogger("scorehost.controlplane.access")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        level = logging.INFO if self.command not in ("GET", "HEAD") or status >= 400 else logging.DEBUG
        if self._logger.isEnabledFor(level):
            line = redact(f"{self.command} {self.path}")
            self._logger.log(level, "%s %s %s %s", self.address_string(), line, code, size)

    def log(self, type: str, message: str, *args: Any) -> None:
        self._logger.log(
            logging.ERROR if type == "error" else logging.INFO, redact(message % args if args else message)
        )
