"""Token authentication between a Ray driver (the control plane) and its cluster, as Ray 2.60 does it.

A cluster checks tokens only when its nodes ran `ray start` with RAY_AUTH_MODE=token (or the head found a
token file): by default it runs code for anyone who reaches its ports. Nothing tells a driver which kind it
joins, and a driver sends its token only with RAY_AUTH_MODE=token in its own environment; without it (token
file or not), `ray.init(address=...)` retries a token cluster for ~20 s and then says only "Failed to connect".
So before `ray.init()`, the control plane asks the cluster's GCS itself, with one gRPC call and no token: an
answer means the cluster is open to anyone; UNAUTHENTICATED means it checks tokens, and the same call with our
token says, in milliseconds, whether ours is the cluster's.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from scorehost.errors import ServiceUnavailable

__all__ = ["checks_tokens", "open_cluster_refusal", "prepare_driver", "token_source"]

# A call the GCS answers anyone it lets in, with nothing to ask: an empty request is a valid one.
_PROBE = "/ray.rpc.NodeInfoGcsService/GetClusterId"
_SETUP = "docs/ray.md, Start a cluster"


def checks_tokens(address: str, timeout: float = 5.0) -> bool:
    """Whether the Ray cluster whose head's GCS is at HOST:PORT `address` refuses a request without a token."""
    return not _answered(address, None, timeout)


def token_source() -> str:
    """Where this process's token comes from, in Ray's order: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names,
    ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
    return str(Path.home() / ".ray" / "auth_token")


def prepare_driver(address: str, timeout: float = 5.0) -> bool:
    """Get this process ready to join the cluster at `address` as a driver (before `ray.init()`); return whether
    the cluster is open: it checks no tokens. For one that checks them, raise ServiceUnavailable naming the fix
    when this process has no token or one the cluster refuses; else turn on RAY_AUTH_MODE=token here, without
    which Ray sends no token."""
    if not checks_tokens(address, timeout):
        return True
    token = _token()
    if token is None:
        raise ServiceUnavailable(
            f"the Ray cluster at {address} checks tokens, and this control plane has none: copy the cluster's token "
            "file (the head's ~/.ray/auth_token) to ~/.ray/auth_token on the control plane's machine, mode 0600, or "
            f"name it in RAY_AUTH_TOKEN_PATH where the control plane starts (the first scorehost command); {_SETUP}"
        )
    if not _answered(address, token, timeout):
        raise ServiceUnavailable(
            f"the Ray cluster at {address} refused this control plane's token, from {token_source()}: it is not "
            "the cluster's. Copy the token file the cluster's nodes were started with (the head's "
            f"~/.ray/auth_token) there, mode 0600; {_SETUP}"
        )
    os.environ["RAY_AUTH_MODE"] = "token"
    raylet: Any = importlib.import_module("ray._raylet")
    raylet.Config.initialize("")  # Ray read RAY_AUTH_MODE when first imported: have it read it again
    return False


def open_cluster_refusal(address: str) -> str:
    """Why a deployment is refused on a cluster that checks no tokens, naming both ways on."""
    return (
        f"the Ray cluster at {address} has no token authentication: anyone who reaches its ports can run code on "
        "it. Turn it on (RAY_AUTH_MODE=token exported and the cluster's token file in place on every node before "
        f"`ray start`, and on the control plane's machine; {_SETUP}), or pass --insecure-cluster if the cluster is "
        "on a network only you control"
    )


def _token() -> str | None:
    """The token Ray would send from this process, read by Ray's own loader (it strips spaces, and RAY_AUTH_TOKEN
    wins over the files); None when there is none."""
    raylet: Any = importlib.import_module("ray._raylet")
    loader = raylet.AuthenticationTokenLoader.instance()
    loader.reset_cache()  # the environment may have changed since Ray last looked
    try:
        if not loader.has_token(ignore_auth_mode=True):
            return None
        token = str(loader.get_raw_token(ignore_auth_mode=True))
    except Exception:  # RAY_AUTH_TOKEN_PATH names a file that is missing or empty (Ray's AuthenticationError)
        raise ServiceUnavailable(
            f"RAY_AUTH_TOKEN_PATH names {os.environ.get('RAY_AUTH_TOKEN_PATH')}, which is missing or empty: copy the "
            f"cluster's token file there (mode 0600), or unset it to use ~/.ray/auth_token; {_SETUP}"
        ) from None
    return token or None


def _answered(address: str, token: str | None, timeout: float) -> bool:
    """Whether the GCS answers one request sent with `token` (None: without one); False when it says
    UNAUTHENTICATED. Raises ServiceUnavailable for any other outcome: we cannot tell then."""
    grpc: Any = importlib.import_module("grpc")
    channel = _channel(grpc, address)
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    try:
        call = channel.unary_unary(_PROBE, request_serializer=_same, response_deserializer=_same)
        call(b"", timeout=timeout, metadata=metadata)
        return True
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            return False
        raise ServiceUnavailable(
            f"cannot ask the Ray cluster at {address} whether it checks tokens ({error.code().name}: "
            f"{error.details()}): is {address} the GCS port of its head (`ray start --head --port`)?"
        ) from None
    finally:
        channel.close()


def _channel(grpc: Any, address: str) -> Any:
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):  # as Ray's own clients do
        tls: Any = importlib.import_module("ray._common.tls_utils")
        chain, key, ca = tls.load_certs_from_env()
        credentials = grpc.ssl_channel_credentials(certificate_chain=chain, private_key=key, root_certificates=ca)
        return grpc.secure_channel(address, credentials)
    return grpc.insecure_channel(address)


def _same(data: bytes) -> bytes:
    return data
