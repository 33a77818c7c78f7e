"""The exceptions scorehost raises, each carrying the HTTP status it answers with.

```
* ScorehostError                      500
  + ScriptLoadError(ImportError)      start-up: the entry script cannot be served
    - ScriptNotFound                  the script path is missing or not a file
    - ScriptImportError               importing the script raised
    - MissingFunction                 no init() or no run()
    - BadRunSignature                 run() cannot be called with the request
    - BadSchema                       inference-schema decorators that cannot work
    - InitFailed                      init() raised
  + RequestError                      400: the request cannot be turned into run() input
    - BodyNotUTF8
    - InvalidJSON
    - MissingParameter                a typed run() parameter has no value in the body
    - InvalidParameter                a value the decorators cannot convert
    - UnsupportedMediaType            415: a typed run() needs a JSON body
    - IncompleteBody                  the body ended before its length, or its chunked framing is broken
  + HeaderFieldsTooLarge              431: a header field past the limit the reference's gunicorn keeps
    - RequestIdTooLong                431: a request-id header longer than the reference allows
  + URITooLong                        414: a request target past the limit the reference's gunicorn keeps
  + PayloadTooLarge                   413
  + RequestTimeout                    408: the body did not arrive within the body timeout
  + RunFailed                         500: run() raised
  + ResultNotSerializable             500: run() returned something we cannot send
  + ScoringTimeout(TimeoutError)      504: the deadline passed while run() ran
    - QueueTimeout                    504: the deadline passed while the request waited; run() never ran
  + TooManyRequests                   429: it waited its longest for its turn (--max-queue-wait); run() never ran
  + ServiceUnavailable                503: the worker cannot take the request now
  + PortInUse(OSError)                the port or Unix socket to listen on is taken or refused
  + RegistryError                     the model registry (`scorehost models`, `Registry`)
    - InvalidModelReference(ValueError)   a name, alias, version or path the registry cannot accept
    - UnknownModel(LookupError)       no such model, version or alias
    - ModelInUse                      deleting a version that an alias points to needs force
    - CorruptModel                    a stored file's bytes no longer match its sha256
    - RegistrySchemaError             the database was written by a newer scorehost
    - StorageFull                     507: a write ran out of disk space (or past `ulimit -f`)
    - WorkspaceDatabaseError          503: the workspace database cannot be reached or used (its URL, masked; fix)
  + DeployError                       endpoints and deployments (`scorehost endpoints`, the control plane)
    - InvalidSpec(ValueError)         400: a declaration that cannot work (name, traffic, instances)
    - UnknownResource(LookupError)    404: no such endpoint or deployment
    - ResourceExists                  409: the name is taken
    - DeploymentFailed                502: a deployment cannot start (init() raised, it exits); its log's end
      - DeploymentTimeout(TimeoutError)  504: it did not become ready in time
  + EnvironmentProblem                a deployment's Python environment (`scorehost environments`)
    - InvalidEnvironment(ValueError)  400: a conda or requirements file that cannot be used as written
    - PythonNotFound(LookupError)     400: no interpreter of the Python version the environment asks for
    - EnvironmentBuildFailed          502: uv could not build it (its message names the package)
  + ProjectFileError(ValueError)      400: an Azure ML YAML file that cannot be used (its file, line and fix)
  + CollectionError                   data collection: a row that cannot be encoded, a missing Parquet writer
```
"""

from __future__ import annotations

__all__ = [
    "BadRunSignature",
    "BadSchema",
    "BodyNotUTF8",
    "CollectionError",
    "CorruptModel",
    "DeployError",
    "DeploymentFailed",
    "DeploymentTimeout",
    "EnvironmentBuildFailed",
    "EnvironmentProblem",
    "HeaderFieldsTooLarge",
    "IncompleteBody",
    "InitFailed",
    "InvalidEnvironment",
    "InvalidJSON",
    "InvalidModelReference",
    "InvalidParameter",
    "InvalidSpec",
    "MissingFunction",
    "MissingParameter",
    "ModelInUse",
    "PayloadTooLarge",
    "PortInUse",
    "ProjectFileError",
    "PythonNotFound",
    "QueueTimeout",
    "RegistryError",
    "RegistrySchemaError",
    "RequestError",
    "RequestIdTooLong",
    "RequestTimeout",
    "ResourceExists",
    "ResultNotSerializable",
    "RunFailed",
    "ScorehostError",
    "ScoringTimeout",
    "ScriptImportError",
    "ScriptLoadError",
    "ScriptNotFound",
    "ServiceUnavailable",
    "StorageFull",
    "TooManyRequests",
    "URITooLong",
    "UnknownModel",
    "UnknownResource",
    "UnsupportedMediaType",
    "WorkspaceDatabaseError",
]


class ScorehostError(Exception):
    """Root of every scorehost error; `status_code` is what the HTTP server answers."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ScriptLoadError(ScorehostError, ImportError):
    """The entry script cannot be served; raised at start-up, never per request."""

    def __init__(self, message: str, *, details: str = "") -> None:
        super().__init__(message)
        self.details = details  # a traceback, when user code raised

    def __str__(self) -> str:
        return f"{self.message}\n{self.details}" if self.details else self.message


class ScriptNotFound(ScriptLoadError):
    """The entry script path does not exist or is not a file."""


class ScriptImportError(ScriptLoadError):
    """Importing the entry script raised."""


class MissingFunction(ScriptLoadError):
    """The entry script has no `init()` or no `run()`."""


class BadRunSignature(ScriptLoadError):
    """`run()` takes parameters the server cannot supply."""


class BadSchema(ScriptLoadError):
    """`@input_schema` / `@output_schema` decorators that cannot work (no sample, a parameter run() lacks)."""


class InitFailed(ScriptLoadError):
    """`init()` raised."""


class RequestError(ScorehostError):
    """The request cannot be turned into the input `run()` expects."""

    status_code = 400


class BodyNotUTF8(RequestError):
    """The body is not valid UTF-8 text."""


class InvalidJSON(RequestError):
    """The body is not the JSON the current `run_input` rule needs."""


class MissingParameter(RequestError):
    """A parameter of a typed `run()` has no value in the request and no default."""


class InvalidParameter(RequestError):
    """The inference-schema decorators cannot convert a parameter's value."""


class UnsupportedMediaType(RequestError):
    """A typed `run()` needs a JSON body, and the request says it is something else."""

    status_code = 415


class IncompleteBody(RequestError):
    """The body ended before the length its headers announced, or its chunked framing is broken."""


class HeaderFieldsTooLarge(ScorehostError):
    """A header field is larger than the server accepts."""

    status_code = 431


class URITooLong(ScorehostError):
    """The request's target (path and query) is longer than the server accepts."""

    status_code = 414


class RequestIdTooLong(HeaderFieldsTooLarge):
    """A request-id header is longer than the reference allows."""

    status_code = 431


class PayloadTooLarge(ScorehostError):
    """The body is larger than `max_body_size`."""

    status_code = 413


class RequestTimeout(ScorehostError):
    """The request's body did not arrive within the body timeout."""

    status_code = 408


class RunFailed(ScorehostError):
    """`run()` raised an exception."""


class ResultNotSerializable(ScorehostError):
    """`run()` returned a value that cannot be encoded as JSON."""


class ScoringTimeout(ScorehostError, TimeoutError):
    """The request's deadline passed while it waited for, or ran in, `run()`."""

    status_code = 504


class QueueTimeout(ScoringTimeout):
    """The request waited past its deadline and was never run: not a failed run."""


class TooManyRequests(ScorehostError):
    """The request waited `--max-queue-wait` for its turn and was sent away unrun (Azure ML's max_queue_wait_ms)."""

    status_code = 429


class ServiceUnavailable(ScorehostError):
    """The worker cannot take the request now (it is shutting down or being replaced)."""

    status_code = 503


class PortInUse(ScorehostError, OSError):
    """Another process listens on the port (or the socket cannot be bound)."""


class RegistryError(ScorehostError):
    """The model registry cannot do what was asked; the message names the fix."""


class InvalidModelReference(RegistryError, ValueError):
    """A model name, alias, version, reference or registered path that the registry refuses."""

    status_code = 400


class UnknownModel(RegistryError, LookupError):
    """No model, version or alias of that name exists."""

    status_code = 404


class ModelInUse(RegistryError):
    """The version cannot be deleted without `force`: aliases point to it."""

    status_code = 409


class CorruptModel(RegistryError):
    """A stored file is missing or its bytes no longer match the sha256 recorded at registration."""


class RegistrySchemaError(RegistryError):
    """The registry database has a schema this scorehost cannot use (written by a newer version)."""


class StorageFull(RegistryError):
    """A write in the workspace ran out of space: the message names the folder, the file, the size and the fix."""

    status_code = 507


class WorkspaceDatabaseError(RegistryError):
    """The workspace database cannot be reached or used: a missing driver, a refused connection, a wrong password, a
    missing database. The message is one line naming the database (password masked), what failed and the fix."""

    status_code = 503


class DeployError(ScorehostError):
    """Endpoints and deployments: the control plane cannot do what was asked; the message names the fix."""


class InvalidSpec(DeployError, ValueError):
    """A declaration that cannot work: a bad name, traffic that does not sum to 100, a bad instance count."""

    status_code = 400


class UnknownResource(DeployError, LookupError):
    """No endpoint or deployment of that name."""

    status_code = 404


class ResourceExists(DeployError):
    """An endpoint or deployment of that name exists already."""

    status_code = 409


class DeploymentFailed(DeployError):
    """A deployment cannot start or keep running: `cause` says why, `log_tail` holds its last log lines."""

    status_code = 502

    def __init__(self, message: str, *, cause: str = "", log_tail: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.cause = cause
        self.log_tail = log_tail

    def __str__(self) -> str:
        if not self.log_tail:
            return self.message
        return self.message + "\nlast log lines:\n" + "\n".join(self.log_tail)


class DeploymentTimeout(DeploymentFailed, TimeoutError):
    """A deployment did not become ready in time (init() still running, or stuck)."""

    status_code = 504


class EnvironmentProblem(ScorehostError):
    """A deployment's Python environment cannot be read, found or built."""


class InvalidEnvironment(EnvironmentProblem, ValueError):
    """A conda or requirements file that cannot be used as written."""

    status_code = 400


class PythonNotFound(EnvironmentProblem, LookupError):
    """No interpreter of the Python version an environment asks for (the message names those that exist)."""

    status_code = 400


class EnvironmentBuildFailed(EnvironmentProblem):
    """uv could not build the environment; the message is uv's own (the package it could not resolve)."""

    status_code = 502


class ProjectFileError(ScorehostError, ValueError):
    """An Azure ML YAML file (endpoint, deployment, model, environment) that cannot be used: file, line, fix."""

    status_code = 400


class CollectionError(ScorehostError):
    """Data collection cannot do what was asked: a row it cannot encode (dropped and counted), a missing writer."""
