"""`--model NAME[:VERSION|:ALIAS]`: registered models laid out as AZUREML_MODEL_DIR before any worker forks.

Each server gets a folder of its own (reflinks or copies of the stored files: `registry/serving.py`), so what
its script writes there reaches neither the registry nor another server; it is removed when the server exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scorehost.config import WorkspaceSettings
from scorehost.errors import RegistryError, UnknownModel

if TYPE_CHECKING:
    from scorehost.registry import ModelRef

__all__ = ["ServedModels", "lay_out_models", "parse_model_refs"]

_OWN_HINT = "; `scorehost models list` shows them all"


@dataclass(frozen=True, slots=True)
class ServedModels:
    """The AZUREML_MODEL_DIR built for the requested models, and the versions it holds."""

    model_dir: Path
    versions: tuple[str, ...]  # "sklearn_mnist:2 (production)", in the order asked for

    def describe(self) -> str:
        """`sklearn_mnist:2 (production), encoder:3` for the start-up log."""
        return ", ".join(self.versions)


def parse_model_refs(refs: Sequence[str]) -> list[ModelRef]:
    """Each `NAME[:VERSION|:ALIAS]` parsed; InvalidModelReference says what is wrong with a malformed one."""
    from scorehost.registry import parse_ref

    return [parse_ref(ref) for ref in refs]


def lay_out_models(parsed: Sequence[ModelRef], home: Path | None, *, url: str | None = None) -> ServedModels:
    """Resolve each reference once and lay the versions out; a RegistryError's message names the failing ref.
    `url`: the workspace database's, when a control plane handed it over (url_handoff.py); else the settings'.

    The registry is closed before returning: its SQLite connections must not be shared by forked workers.
    The folder is this process's (its forked workers share it) and is removed when it exits.
    """
    # Imported here: SQLAlchemy costs start-up time that serving without --model need not pay.
    import sqlalchemy.exc

    from scorehost.registry import ModelRef, Registry
    from scorehost.registry.space import NO_ROOM, no_room

    workspace = WorkspaceSettings() if home is None else WorkspaceSettings(home=home)
    models = "scorehost models" if home is None else f"scorehost models --home {workspace.workspace}"
    if not workspace.workspace.is_dir():
        # Opening a Registry would create an empty workspace there: a mistyped --home must not.
        raise UnknownModel(
            f"Cannot serve --model {parsed[0]}: there is no workspace at {workspace.workspace} (--home, "
            f"SCOREHOST_HOME; default ~/.scorehost). Register the model first: `{models} register NAME PATH`."
        )
    labels: dict[tuple[str, int], list[str]] = {}
    try:
        with Registry(workspace.workspace, url=url) as registry:
            for ref in parsed:
                try:
                    key = registry.resolve(ref)
                except RegistryError as error:
                    message = error.message.removesuffix(_OWN_HINT)
                    raise type(error)(
                        f"Cannot serve --model {ref}: {message}. `{models} list` shows the registered models, "
                        "their versions and aliases."
                    ) from None
                aliases = labels.setdefault(key, [])
                label = "latest" if ref.version is None and ref.alias is None else ref.alias
                if label is not None and label not in aliases:
                    aliases.append(label)
            # Pinned to the numbers just resolved: an alias moved meanwhile cannot make the log lie.
            pinned = [ModelRef(name, version=version) for name, version in labels]
            try:
                model_dir = registry.model_dir(pinned)
            except RegistryError as error:  # a damaged store, a full disk: not the user's reference
                listed = ", ".join(map(str, pinned))
                raise type(error)(f"Cannot serve --model {listed}: {error.message}") from None
    except RegistryError as error:  # the database's disk is full (raised by the engine, before any reference)
        if error.message.startswith("Cannot serve --model"):
            raise
        raise type(error)(f"Cannot serve --model: {error.message}") from None
    except OSError as error:
        if error.errno in NO_ROOM:
            raise no_room(error, Path(error.filename or workspace.workspace), what="laying out the models") from None
        raise RegistryError(
            f"Cannot serve --model: the model registry in {workspace.workspace} failed: {error}"
        ) from error
    except sqlalchemy.exc.SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error  # the driver's own words, without SQLAlchemy's wrapping
        raise RegistryError(
            f"Cannot serve --model: the model registry in {workspace.workspace} failed: {cause}"
        ) from error
    versions = tuple(
        f"{name}:{version}" + (f" ({', '.join(aliases)})" if aliases else "")
        for (name, version), aliases in labels.items()
    )
    return ServedModels(model_dir, versions)
