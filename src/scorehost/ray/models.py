"""Registered models on Ray nodes, verified on arrival.

The control plane describes the versions a deployment serves (`manifest`): each file by its path and the
sha256 it was registered with, and where the workspace's model store is. On each node, before `init()`,
`materialize` copies the files from that store (shared storage every node mounts: NFS, EFS, a volume)
to the node's own disk, hashing every byte on the way, and refuses a file whose sha256 or size differ
from the registered ones. What a replica serves is then what was registered, whatever happens later to
the shared copy. Copies are kept per node by content, so replicas on one node copy and hash once; each
replica then serves its own reflinks or copies of them, so a script cannot change what the others see.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scorehost.errors import CorruptModel
from scorehost.registry.copying import copy_hashing
from scorehost.registry.layout import safe_join
from scorehost.registry.serving import clone
from scorehost.registry.store import blob_path, process_alive

__all__ = ["manifest", "materialize", "model_cache"]

_COMPLETE = "manifest.json"  # written last in a copy: its presence means every file arrived whole


def manifest(home: Path, refs: Sequence[str], store: str | None = None) -> dict[str, Any]:
    """What replicas need to fetch `refs` (pinned `name:version` references) from the registry in `home`.

    `store` is where the nodes see the workspace's model store, when not at the same path as here.
    """
    from scorehost.registry import Registry

    with Registry(home) as registry:
        versions = []
        for ref in refs:
            version = registry.get(ref)
            files = [item.to_json() for item in registry.files(version.ref)]
            versions.append(
                {"name": version.name, "version": version.version, "digest": version.digest, "files": files}
            )
        return {"store": store or str(registry.store.root), "versions": versions}


def model_cache() -> Path:
    """Where a node keeps verified copies: `SCOREHOST_MODEL_CACHE`, else a private folder in the temp dir."""
    configured = os.environ.get("SCOREHOST_MODEL_CACHE")
    folder = Path(configured) if configured else Path(tempfile.gettempdir()) / f"scorehost-models-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def materialize(described: Mapping[str, Any], cache: Path | None = None) -> Path:
    """The AZUREML_MODEL_DIR on this node for the `manifest`: `<name>/<version>` for one model, the folder
    holding them all for several. Raises CorruptModel naming the file, the node and the fix."""
    versions = list(described["versions"])
    key = hashlib.sha256(
        "\n".join(sorted(f"{v['name']}:{v['version']}:{v['digest']}" for v in versions)).encode()
    ).hexdigest()[:24]
    root = cache or model_cache()
    final = root / key
    if not (final / _COMPLETE).is_file():
        _copy_verified(Path(described["store"]), versions, root, final)
    models = _own_copy(final / "models", root / "replicas") / "models"
    return models / versions[0]["name"] / str(versions[0]["version"]) if len(versions) == 1 else models


def _own_copy(verified: Path, replicas: Path) -> Path:
    """This replica's own tree of the node's verified copy, each file a reflink or a copy (as `serve --model` lays
    out its folder), so what a script writes beside or into its model reaches neither the node's copy nor another
    replica. Removed when the process exits; those of replicas that died are removed by the next one."""
    replicas.mkdir(mode=0o700, exist_ok=True)
    for stale in replicas.iterdir():
        pid = stale.name.partition(".")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    own = replicas / f"{os.getpid()}.{secrets.token_hex(4)}"
    atexit.register(shutil.rmtree, own, ignore_errors=True)
    for source in sorted(verified.rglob("*")):
        target = own / "models" / source.relative_to(verified)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        clone(source, target)
        target.chmod(0o444)
    return own


def _copy_verified(store: Path, versions: list[Mapping[str, Any]], root: Path, final: Path) -> None:
    node = socket.gethostname()
    scratch = root / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        for version in versions:
            label = f"{version['name']}:{version['version']}"
            folder = scratch / "models" / str(version["name"]) / str(version["version"])
            for item in version["files"]:
                source = blob_path(store, item["sha256"])
                target = safe_join(folder, item["path"])
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(source, "rb", buffering=0) as reading, open(target, "wb") as writing:
                        digest, size = copy_hashing(reading, writing)
                except FileNotFoundError:
                    raise CorruptModel(
                        f"{label} {item['path']}: not found at {source} on node {node}. Every node must see the "
                        "workspace's model store at that path (shared storage), or give the path the nodes mount it "
                        "at (--ray-model-store)"
                    ) from None
                if digest != item["sha256"] or size != item["size"]:
                    raise CorruptModel(
                        f"{label} {item['path']} arrived damaged on node {node}: sha256 {digest} ({size} bytes), "
                        f"registered {item['sha256']} ({item['size']} bytes). Run `scorehost models verify` where "
                        "the store is, and register the model again from its original files"
                    )
                target.chmod(0o444)
        (scratch / _COMPLETE).write_text(json.dumps(versions))
        try:
            scratch.rename(final)
        except OSError as error:  # another replica on this node finished first: use its copy
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
