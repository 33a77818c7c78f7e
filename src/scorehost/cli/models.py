"""`scorehost models ...`: the model registry from the command line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scorehost.cli.help_text import examples
from scorehost.cli.output import echo_json, new_table, print_renderable
from scorehost.cli.project_options import echo_warnings, file_option, set_option
from scorehost.cli.workspace import group_home_option, home_option
from scorehost.config import format_size

if TYPE_CHECKING:
    from scorehost.registry import ModelVersion, Registry, StoredFile

__all__ = ["models_group"]

F = TypeVar("F", bound=Callable[..., Any])

_EPILOG = examples(
    "python examples/digits/train.py examples/digits/model",
    "scorehost models register digits examples/digits/model/model.joblib --tag team=vision",
    "scorehost models alias digits production 1",
    "scorehost models list digits",
    "scorehost models download digits:production ./here",
    "scorehost serve examples/digits/score.py --model digits:production",
    note="A reference (REF) is NAME (the latest version), NAME:VERSION, NAME:ALIAS or NAME:latest. The registry "
    "lives in the workspace (--home, before or after the command, or SCOREHOST_HOME; default ~/.scorehost); its "
    "database may be any SQLAlchemy URL (SCOREHOST_REGISTRY_URL; default SQLite in that folder), e.g. PostgreSQL: "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE after pip install 'scorehost[postgres]'.",
)

_REF_HELP = "REF is NAME (its latest version), NAME:VERSION, NAME:ALIAS or NAME:latest."


def _registry_errors(command: F) -> F:
    """Print registry and file errors as one clear line and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scorehost.errors import ScorehostError, UnknownModel

        try:
            return command(*args, **kwargs)
        except UnknownModel as error:
            raise click.ClickException(error.message + _alias_hint(error.message)) from None
        except ScorehostError as error:  # the registry's, and an Azure ML model file's (file, line, fix)
            raise click.ClickException(error.message) from None
        except OSError as error:  # e.g. a DESTINATION under a file: the path and the reason
            from scorehost.registry.space import NO_ROOM, no_room

            if error.errno in NO_ROOM and error.filename:  # where the registry did not know the size needed
                raise click.ClickException(
                    no_room(error, Path(error.filename), what=f"writing {error.filename}").message
                ) from None
            where = f"{error.filename}: " if error.filename else ""
            raise click.ClickException(f"{where}{error.strerror or error}") from None

    return wrapper  # type: ignore[return-value]


def _alias_hint(message: str) -> str:
    """How to set the alias that was asked for, unless the registry's message already names a command."""
    params = click.get_current_context().params
    if "`" in message or params.get("remove"):
        return ""
    name, _, selector = str(params.get("ref") or "").partition(":")
    if not selector and params.get("version") is not None:  # `alias NAME ALIAS OTHER_ALIAS`
        name, selector = str(params["name"]), str(params["version"])
    if not selector or selector.isdigit() or selector == "latest":
        return ""
    return f"; set it with `scorehost models alias {name} {selector} VERSION`"


if TYPE_CHECKING:
    _ParamType = click.ParamType[str, Any]  # generic from click 8.2 on
else:
    _ParamType = click.ParamType


class _Checked(_ParamType):
    """A name, alias or reference, checked as the registry checks it: a malformed one is a usage error naming the
    argument (exit 2), before anything is opened."""

    def __init__(self, name: str, check: Callable[[str], object]) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from scorehost.errors import InvalidModelReference

        try:
            self._check(value)
        except InvalidModelReference as error:
            self.fail(error.message, param, ctx)
        return str(value)


def _check_ref(text: str) -> object:
    from scorehost.registry.names import parse_ref

    return parse_ref(text)


def _check_name(text: str) -> object:
    from scorehost.registry.names import check_name

    return check_name(text)


def _check_alias(text: str) -> object:
    from scorehost.registry.names import check_alias

    return check_alias(text)


def _check_selector(text: str) -> object:
    """A version number, `latest`, or an alias: what may follow `NAME:`."""
    from scorehost.registry.names import LATEST, check_alias, parse_version

    if text.strip().isascii() and text.strip().isdigit():
        return parse_version(text)
    return text if text == LATEST else check_alias(text)


REF = _Checked("ref", _check_ref)
NAME = _Checked("name", _check_name)
ALIAS = _Checked("alias", _check_alias)
SELECTOR = _Checked("version", _check_selector)


def _open(ctx: click.Context, home: Path | None) -> Registry:
    from scorehost.registry import Registry

    registry = Registry(home)
    ctx.call_on_close(registry.close)
    return registry


def _pairs(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE (e.g. team=vision)", param=param)
        pairs[key] = text
    return pairs


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _pairs_text(pairs: Any, separator: str) -> str:
    return separator.join(f"{key}={value}" for key, value in sorted(pairs.items())) or "-"


def _json_option(text: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=text)


def _progress_option(work: str) -> Callable[[F], F]:
    """`--progress/--no-progress`; `work` says what the bar follows (copying, re-hashing)."""
    return click.option(
        "--progress/--no-progress",
        default=None,
        help=f"A progress bar on stderr while {work} 8 MB or more.  [default: only on a terminal]",
    )


@click.group("models", epilog=_EPILOG)
@group_home_option
def models_group() -> None:
    """Register, list, alias, download and verify versioned models.

    Each registration of a NAME is a new, numbered version (1, 2, ...) whose files are copied into the
    registry and never change; aliases such as production name one version and can be moved.
    """


@models_group.command(
    "register",
    short_help="Store a file or folder as a model's next version.",
    epilog=examples(
        "scorehost models register digits ./model.joblib --tag team=vision",
        'scorehost models register digits ./retrained/ --description "retrained on May data"',
        "scorehost models register -f model.yml --set version=3",
        "scorehost models register flowers ./mlflow-model --type mlflow_model",
    ),
)
@click.argument("name", type=NAME, required=False, metavar="NAME")
@click.argument("path", type=click.Path(path_type=Path), required=False, metavar="PATH")
@file_option("An Azure ML model YAML (name, path, type, description, tags, properties) instead of NAME PATH.")
@set_option
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--tag", "-t", "tags", multiple=True, callback=_pairs, help="KEY=VALUE label (repeatable).")
@click.option("--property", "-p", "properties", multiple=True, callback=_pairs, help="KEY=VALUE fact (repeatable).")
@click.option(
    "--type",
    "model_type",
    type=click.Choice(["custom_model", "mlflow_model", "triton_model"]),
    help="Azure ML's model type, kept as the property azureml.model_type: an mlflow_model (a folder MLflow saved, "
    "with its MLmodel file) is served without a scoring script.  [default: custom_model]",
)
@_json_option("Print the new version as JSON.")
@_progress_option("copying")
@home_option
@click.pass_context
@_registry_errors
def register_command(
    ctx: click.Context,
    name: str | None,
    path: Path | None,
    yaml_file: Path | None,
    overrides: tuple[str, ...],
    description: str,
    tags: dict[str, str],
    properties: dict[str, str],
    model_type: str | None,
    as_json: bool,
    progress: bool | None,
    home: Path | None,
) -> None:
    """Store a file or folder as the next version of model NAME.

    NAME is the model's name (letters, digits, '.', '_' and '-', starting with a letter or digit); its
    first registration is version 1. PATH is a file, or a folder with every file under it: it is copied
    into the registry (identical files are stored once) and keeps its own name, so `download` and
    `serve --model` give back PATH's file or folder as it was.

    With -f model.yml (Azure ML's model file), its name, path (relative to the file), description, tags and
    properties; a `version:` that already holds the same files is reused, not registered again.
    """
    from scorehost.cli.progress import BarProgress

    if yaml_file is not None:
        if name or path or description or tags or properties or model_type:
            raise click.UsageError("-f takes the model's fields from the file: change them with --set")
        version = _register_file(_open(ctx, home).home, yaml_file, overrides, BarProgress(progress))
    elif name is None or path is None:
        raise click.UsageError("give NAME and PATH (or -f model.yml)")
    else:
        if model_type is not None and model_type != "custom_model":
            _check_model_type(path, model_type)
            properties = {"azureml.model_type": model_type, **properties}
        version = _open(ctx, home).register(
            name, path, description=description, tags=tags, properties=properties, progress=BarProgress(progress)
        )
    if as_json:
        echo_json(version.to_json())
    else:
        summary = f"{_count(version.file_count, 'file')}, {format_size(version.size)}, digest {version.digest[:12]}"
        click.echo(f"registered {version.ref} ({version.root}: {summary})")


def _check_model_type(path: Path, model_type: str) -> None:
    """An mlflow_model must be the folder MLflow saved (or hold it): refused before anything is copied."""
    if model_type != "mlflow_model":
        return
    from scorehost.mlflow import find_mlmodel_folder

    if not path.is_dir() or find_mlmodel_folder(path) is None:
        raise click.BadParameter(
            f"{path} holds no MLmodel file: an mlflow_model is the folder MLflow saved the model in",
            param_hint="--type",
        )


def _register_file(workspace: Path, yaml_file: Path, overrides: tuple[str, ...], progress: Any) -> Any:
    from scorehost.azureml.apply import register_model_file
    from scorehost.azureml.assets import read_model_file

    model = read_model_file(yaml_file, overrides)
    version = register_model_file(model, workspace, progress=progress)
    echo_warnings(model.warnings)
    return version


@models_group.command(
    "list",
    short_help="List models, or the versions of one model.",
    epilog=examples("scorehost models list", "scorehost models list digits --json"),
)
@click.argument("name", required=False, type=NAME)
@_json_option("Print JSON for scripts instead of a table (times: ISO 8601 UTC).")
@home_option
@click.pass_context
@_registry_errors
def list_command(ctx: click.Context, name: str | None, as_json: bool, home: Path | None) -> None:
    """List models (one row each), or the versions of model NAME (one row per version)."""
    registry = _open(ctx, home)
    if name is not None:
        versions = registry.list_versions(name)
        if as_json:
            echo_json([version.to_json() for version in versions])
            return
        if not versions:
            click.echo(f"model {name!r} has no versions left; add one with `scorehost models register {name} PATH`")
            return
        table = new_table("VERSION", "ALIASES", "SIZE", "FILES", "CREATED", "TAGS", "DESCRIPTION")
        for v in versions:
            table.add_row(
                str(v.version),
                ",".join(v.aliases) or "-",
                format_size(v.size),
                str(v.file_count),
                v.created,
                _pairs_text(v.tags, " "),
                v.description or "-",
            )
        print_renderable(table)
        return
    models = registry.list_models()
    if as_json:
        echo_json([model.to_json() for model in models])
        return
    if not models:
        click.echo("no models registered; add one with `scorehost models register NAME PATH`", err=True)
        return
    table = new_table("NAME", "VERSIONS", "LATEST", "ALIASES")
    for model in models:
        table.add_row(model.name, str(model.versions), str(model.latest or "-"), _pairs_text(model.aliases, " "))
    print_renderable(table)


@models_group.command(
    "show",
    epilog=examples("scorehost models show digits:production", "scorehost models show digits:2 --json", note=_REF_HELP),
    short_help="Show one version with its files' sha256s.",
)
@click.argument("ref", type=REF)
@_json_option("Print JSON for scripts instead of a table (times: ISO 8601 UTC).")
@home_option
@click.pass_context
@_registry_errors
def show_command(ctx: click.Context, ref: str, as_json: bool, home: Path | None) -> None:
    """Show one version: its facts, and each file with its size and sha256."""
    registry = _open(ctx, home)
    version = registry.get(ref)
    stored = registry.files(version.ref)
    if as_json:
        echo_json({**version.to_json(), "files": [item.to_json() for item in stored]})
        return
    print_renderable(_describe(version, stored))


def _describe(version: ModelVersion, stored: list[StoredFile]) -> Any:
    from rich.console import Group

    facts = new_table("", "")
    facts.show_header = False
    size = format_size(version.size)
    if size != f"{version.size} bytes":
        size += f" ({version.size} bytes)"
    rows = [
        ("name", version.name),
        ("version", str(version.version)),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("description", version.description or "-"),
        ("created", version.created),
        ("stored as", f"{version.root} (a {version.kind})"),
        ("size", f"{size}, {_count(version.file_count, 'file')}"),
        ("digest", f"{version.digest} (sha256 of the file list)"),
        ("tags", _pairs_text(version.tags, ", ")),
        ("properties", _pairs_text(version.properties, ", ")),
    ]
    for label, value in rows:
        facts.add_row(label, value)
    files = new_table("PATH", "SIZE", "SHA256")
    for item in stored:
        files.add_row(item.path, format_size(item.size), item.digest)
    return Group(facts, "", files)


@models_group.command(
    "download",
    epilog=examples(
        "scorehost models download digits:production ./here",
        "scorehost models download digits:2 --force",
        note=_REF_HELP,
    ),
    short_help="Copy a version's file or folder out, verified.",
)
@click.argument("ref", type=REF)
@click.argument("destination", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the file or folder if it already exists.")
@_progress_option("copying")
@home_option
@click.pass_context
@_registry_errors
def download_command(
    ctx: click.Context, ref: str, destination: Path, force: bool, progress: bool | None, home: Path | None
) -> None:
    """Copy REF's file or folder into the folder DESTINATION (default: here).

    A model registered from model.pkl comes back as DESTINATION/model.pkl; one registered from a folder
    comes back as that folder, inside DESTINATION. Every byte is checked against its sha256 before the
    result takes its place: a damaged model writes nothing.
    """
    from scorehost.cli.progress import BarProgress

    registry = _open(ctx, home)
    version = registry.get(ref)
    with _removing_new_folders(destination):
        written = registry.download(version.ref, destination, overwrite=force, progress=BarProgress(progress))
    click.echo(
        f"downloaded {version.ref} to {written} ({_count(version.file_count, 'file')}, {format_size(version.size)})"
    )


@contextmanager
def _removing_new_folders(destination: Path) -> Iterator[None]:
    """On failure, remove the folders on the way to `destination` that did not exist before, if left empty."""
    new: list[Path] = []
    target = destination.absolute()
    for folder in (target, *target.parents):
        if folder.exists():
            break
        new.append(folder)
    try:
        yield
    except BaseException:
        for folder in new:
            with suppress(OSError):  # not empty: something else wrote there meanwhile
                folder.rmdir()
        raise


@models_group.command(
    "delete",
    short_help="Delete one version; its number is never reused.",
    epilog=examples("scorehost models delete digits:1", "scorehost models delete digits:staging --force"),
)
@click.argument("ref", type=REF)
@click.option("--force", is_flag=True, help="Delete even if aliases point to it (they are removed).")
@home_option
@click.pass_context
@_registry_errors
def delete_command(ctx: click.Context, ref: str, force: bool, home: Path | None) -> None:
    """Delete the one version REF names; its number is never given to another version.

    REF must name the version: NAME:VERSION, NAME:ALIAS or NAME:latest (a bare NAME is refused, so that
    nobody deletes a version while meaning the model). The version's files are freed unless other
    versions share them.
    """
    if ":" not in ref:
        raise click.UsageError(
            f"{ref!r} does not say which version to delete; write {ref}:VERSION, {ref}:ALIAS or {ref}:latest"
        )
    result = _open(ctx, home).delete(ref, force=force)
    removed = f"; removed {', '.join(f'{result.name}:{alias}' for alias in result.aliases_removed)}"
    freed = (
        "space is reclaimed by `scorehost models gc` (a registration was in progress)"
        if result.reclaim_deferred
        else f"freed {format_size(result.bytes_freed)}"
    )
    click.echo(f"deleted {result.name}:{result.version}{removed if result.aliases_removed else ''}; {freed}")


@models_group.command(
    "alias",
    short_help="Point an alias (e.g. production) at a version.",
    epilog=examples(
        "scorehost models alias digits production 2",
        "scorehost models alias digits production staging",
        "scorehost models alias digits staging --remove",
    ),
)
@click.argument("name", type=NAME)
@click.argument("alias", type=ALIAS)
@click.argument("version", required=False, type=SELECTOR)
@click.option("--remove", is_flag=True, help="Remove the alias instead of setting it.")
@home_option
@click.pass_context
@_registry_errors
def alias_command(
    ctx: click.Context, name: str, alias: str, version: str | None, remove: bool, home: Path | None
) -> None:
    """Point NAME:ALIAS at VERSION, moving it if it is set; or --remove it.

    ALIAS is a name such as production (not a number, and not latest, which always means the newest
    version). VERSION is a version number or another alias: `alias NAME production staging` promotes
    the version staging points to now; the two aliases do not follow each other afterwards.
    """
    from scorehost.errors import RegistryError

    registry = _open(ctx, home)
    if remove:
        if version is not None:
            raise click.UsageError("--remove takes no VERSION")
        was = registry.remove_alias(name, alias)
        click.echo(f"removed {name}:{alias} (it pointed to {name}:{was})")
        return
    if version is None:
        raise click.UsageError(f"give the VERSION {name}:{alias} should point to, or --remove it")
    try:
        before: int | None = registry.resolve(f"{name}:{alias}")[1] if alias != "latest" else None
    except RegistryError:  # not set yet, or not valid: set_alias says which
        before = None
    target = registry.set_alias(name, alias, version)
    moved = f" (was {name}:{before})" if before is not None and before != target.version else ""
    click.echo(f"{name}:{alias} -> {target.ref}{moved}")


@models_group.command(
    "verify",
    epilog=examples("scorehost models verify", "scorehost models verify digits:production --json", note=_REF_HELP),
    short_help="Re-hash stored files; exit 1 if any is damaged.",
)
@click.argument("ref", required=False, type=REF)
@_json_option("Print the report as JSON (the exit status is the same).")
@_progress_option("re-hashing")
@click.option("--keep-damaged", is_flag=True, help="Only report damaged files; leave them in the store.")
@home_option
@click.pass_context
@_registry_errors
def verify_command(
    ctx: click.Context, ref: str | None, as_json: bool, progress: bool | None, keep_damaged: bool, home: Path | None
) -> None:
    """Re-hash stored files; exit 1 if any is damaged or missing.

    Checks the files of REF's version, or of every version when REF is left out, against the sha256
    recorded when they were registered. A damaged file is moved to store/damaged/ (unless
    --keep-damaged), so nothing serves or downloads it; registering the original file again repairs
    every version that uses it.
    """
    from scorehost.cli.progress import BarProgress

    report = _open(ctx, home).verify(ref, quarantine=not keep_damaged, progress=BarProgress(progress))
    if as_json:
        echo_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(f"damaged: {problem}", err=True)
        verdict = "all intact" if report.ok else f"{len(report.problems)} damaged"
        checked = f"{_count(report.files, 'file')} of {_count(report.versions, 'version')}"
        click.echo(f"checked {checked} ({format_size(report.bytes)}): {verdict}")
    if not report.ok:
        if not as_json:
            refs = ", ".join(dict.fromkeys(f"{p.name}:{p.version}" for p in report.problems))
            click.echo(
                f"to repair {refs}: register the original files again (`scorehost models register NAME PATH`); "
                "the new version's copy serves every version with the same bytes",
                err=True,
            )
        sys.exit(1)


@models_group.command(
    "gc",
    short_help="Free the space of unused files and of stopped servers.",
    epilog=examples("scorehost models gc"),
)
@home_option
@click.pass_context
@_registry_errors
def gc_command(ctx: click.Context, home: Path | None) -> None:
    """Free the space of files no version uses, of killed registrations, and of stopped servers.

    `delete` frees a version's files itself; gc finishes what a delete left while a registration was in
    progress, removes the scratch copies of registrations that were killed (their process is gone, or the
    copy was untouched for an hour), and the model folders of `serve --model` servers that are gone.
    """
    report = _open(ctx, home).gc()
    click.echo(
        f"removed {_count(report.blobs, 'unused file')} ({format_size(report.bytes_freed)}), "
        f"{_count(report.scratch_files, 'scratch file')} of stopped registrations "
        f"({format_size(report.scratch_bytes)}) "
        f"and {_count(report.server_folders, 'folder')} of stopped servers"
    )
