"""GET /swagger.json: a user's own documents from the app root, else ours, generated once at start-up."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from scorehost.errors import BadSchema
from scorehost.host.typed import read_schema
from scorehost.schema.documents import Mode, Service, openapi2, openapi3
from scorehost.schema.service import ALL_VERSIONS, UNDECORATED, service_input, service_output, supported_versions

__all__ = ["SwaggerDocs"]

logger = logging.getLogger("scorehost.worker")

# The `version` query values the reference accepts, and the document each names.
_ALIASES = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
# A user's own documents, looked for in this order (swagger.json is the reference's older name for version 2).
_USER_FILES = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",), "3.1": ("swagger3.1.json",)}


class SwaggerDocs:
    """The documents of one entry script, by version; `answer()` gives what GET /swagger.json replies."""

    def __init__(
        self,
        *,
        run_function: Callable[..., object],
        mode: Mode,
        app_root: Path,
        service_name: str = "ML service",
        service_version: str = "1.0",
        path_prefix: str = "",
    ) -> None:
        self.user_files: dict[str, Path] = {}
        """The versions served from a user's own file, and that file."""
        documents: dict[str, bytes | None] = {
            version: self._user_document(app_root, version) for version in _USER_FILES
        }
        schema = read_schema(run_function)
        try:
            output = service_output(schema, run_function) if schema.decorated else dict(UNDECORATED)
            generated: tuple[str, ...]
            if mode == "raw":
                generated, inputs = ALL_VERSIONS, dict(UNDECORATED)
            elif schema.decorated:
                generated, inputs = supported_versions(schema, output), service_input(schema)
            else:
                generated, inputs = ALL_VERSIONS, dict(UNDECORATED)
        except Exception:  # a decorator release we cannot describe: scoring goes on, without generated documents
            logger.exception(
                "the API documents (GET /swagger.json) cannot be made from run()'s inference-schema decorators; "
                "scoring is not affected"
            )
            generated, inputs, output = (), dict(UNDECORATED), dict(UNDECORATED)
        self.versions: tuple[str, ...] = tuple(v for v in ALL_VERSIONS if documents[v] is not None or v in generated)
        """The versions that answer 200."""
        service = Service(service_name, service_version, path_prefix, mode, inputs, output, self.versions)
        builders = {"2": lambda: openapi2(service), "3": lambda: openapi3(service, "3.0.3")}
        builders["3.1"] = lambda: openapi3(service, "3.1.0")
        for version in generated:
            if documents[version] is None:
                documents[version] = json.dumps(builders[version]()).encode()
        self._documents = documents

    def answer(self, version: str | None) -> tuple[int, bytes]:
        """(200, the document) or (404, a JSON message) for the raw `version` query value (None when absent)."""
        asked = "2" if version is None else version
        name = _ALIASES.get(asked)
        supported = ", ".join(self.versions)
        if name is None:
            return 404, _message(f"Swagger version [{asked}] is not valid. Supported versions: [{supported}].")
        document = self._documents[name]
        if document is None:
            return 404, _message(
                f"Swagger version [{asked}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}]."
            )
        return 200, document

    def _user_document(self, app_root: Path, version: str) -> bytes | None:
        """The user's file for `version`, byte for byte; an empty one (`{}`) counts as none, as on the reference."""
        for name in _USER_FILES[version]:
            path = app_root / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BadSchema(f"{path} cannot be read ({exc}); it would be served as /swagger.json.") from exc
            try:
                parsed = json.loads(data)
            except ValueError as exc:
                raise BadSchema(
                    f"{path} is not valid JSON ({exc}). It would be served as /swagger.json?version={version}: "
                    "fix it, or remove it to have the documents generated."
                ) from None
            if parsed:
                self.user_files[version] = path
                return data
        return None


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()
