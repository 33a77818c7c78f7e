"""`scorehost models ...`: the model registry from the command line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from scorehost.registry import ModelVersion, Registry, StoredFile

__all__ = ["models_group"]

F = TypeVar("F", bound=Callable[..., Any])

_EPILOG = """
\b
Examples:
  scorehost models register sklearn_mnist ./sklearn_mnist_model.pkl --tag team=vision
  scorehost models register sklearn_mnist ./retrained/ --description "retrained on May data"
  scorehost models alias sklearn_mnist production 2
  scorehost serve score.py --model sklearn_mnist:production

\b
A reference is NAME (the latest version), NAME:VERSION, or NAME:ALIAS.
The registry lives in SCOREHOST_HOME (default ~/.scorehost); its database may be any SQLAlchemy URL
(SCOREHOST_REGISTRY_URL; default SQLite in that folder).
"""


def _registry_errors(command: F) -> F:
    """Print registry errors as one clear line and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scorehost.errors import RegistryError

        try:
            return command(*args, **kwargs)
        except RegistryError as error:
            raise click.ClickException(error.message) from None

    return wrapper  # type: ignore[return-value]


def _open(ctx: click.Context) -> Registry:
    from scorehost.registry import Registry

    registry: Registry = ctx.ensure_object(dict).setdefault("registry", Registry(ctx.obj.get("home")))
    ctx.call_on_close(registry.close)
    return registry


def _pairs(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param=param)
        pairs[key] = text
    return pairs


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _size(count: int) -> str:
    from rich.filesize import decimal

    return str(decimal(count))


def _table(*columns: str) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print(renderable: Any) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped: no wrapping at 80 columns, so each row stays one line for grep
        console = Console(width=100_000)
    console.print(renderable)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr for copies of 8 MB or more.  [default: only on a terminal]",
)


@click.group("models", epilog=_EPILOG)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SCOREHOST_HOME",
    help="Workspace folder holding the registry.  [default: ~/.scorehost]",
)
@click.pass_context
def models_group(ctx: click.Context, home: Path | None) -> None:
    """Register, list, alias, download and verify versioned models."""
    ctx.ensure_object(dict)["home"] = home


@models_group.command("register")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--tag", "-t", "tags", multiple=True, callback=_pairs, help="KEY=VALUE label (repeatable).")
@click.option("--property", "-p", "properties", multiple=True, callback=_pairs, help="KEY=VALUE fact (repeatable).")
@json_option
@progress_option
@click.pass_context
@_registry_errors
def register_command(
    ctx: click.Context,
    name: str,
    path: Path,
    description: str,
    tags: dict[str, str],
    properties: dict[str, str],
    as_json: bool,
    progress: bool | None,
) -> None:
    """Store PATH (a file or a folder) as the next version of model NAME."""
    from scorehost.cli.progress import BarProgress

    version = _open(ctx).register(
        name, path, description=description, tags=tags, properties=properties, progress=BarProgress(progress)
    )
    if as_json:
        _echo_json(version.to_json())
    else:
        summary = f"{version.file_count} file(s), {_size(version.size)}, sha256 {version.digest[:12]}"
        click.echo(f"registered {version.ref} ({summary})")


@models_group.command("list")
@click.argument("name", required=False)
@json_option
@click.pass_context
@_registry_errors
def list_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List models, or the versions of model NAME."""
    registry = _open(ctx)
    if name is not None:
        versions = registry.list_versions(name)
        if as_json:
            _echo_json([version.to_json() for version in versions])
            return
        table = _table("VERSION", "ALIASES", "SIZE", "FILES", "CREATED", "TAGS", "DESCRIPTION")
        for v in versions:
            tags = " ".join(f"{key}={value}" for key, value in v.tags.items())
            table.add_row(
                str(v.version), ",".join(v.aliases), _size(v.size), str(v.file_count), v.created, tags, v.description
            )
        _print(table)
        return
    models = registry.list_models()
    if as_json:
        _echo_json([model.to_json() for model in models])
        return
    if not models:
        click.echo("no models registered; add one with `scorehost models register NAME PATH`", err=True)
        return
    table = _table("NAME", "VERSIONS", "LATEST", "ALIASES")
    for model in models:
        aliases = " ".join(f"{alias}={version}" for alias, version in model.aliases.items())
        table.add_row(model.name, str(model.versions), str(model.latest or "-"), aliases)
    _print(table)


@models_group.command("show")
@click.argument("ref")
@json_option
@click.pass_context
@_registry_errors
def show_command(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version (REF: NAME, NAME:VERSION or NAME:ALIAS) with its files."""
    registry = _open(ctx)
    version = registry.get(ref)
    stored = registry.files(version.ref)
    if as_json:
        _echo_json({**version.to_json(), "files": [item.to_json() for item in stored]})
        return
    _print(_describe(version, stored))


def _describe(version: ModelVersion, stored: list[StoredFile]) -> Any:
    from rich.console import Group

    facts = _table("", "")
    facts.show_header = False
    rows = [
        ("name", version.name),
        ("version", str(version.version)),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("description", version.description or "-"),
        ("created", version.created),
        ("size", f"{_size(version.size)} ({version.size} bytes), {version.file_count} file(s)"),
        ("sha256", version.digest),
        ("tags", ", ".join(f"{key}={value}" for key, value in version.tags.items()) or "-"),
        ("properties", ", ".join(f"{key}={value}" for key, value in version.properties.items()) or "-"),
    ]
    for label, value in rows:
        facts.add_row(label, value)
    files = _table("PATH", "SIZE", "SHA256")
    for item in stored:
        files.add_row(item.path, _size(item.size), item.digest)
    return Group(facts, "", files)


@models_group.command("download")
@click.argument("ref")
@click.argument("destination", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the file or folder if it already exists.")
@progress_option
@click.pass_context
@_registry_errors
def download_command(ctx: click.Context, ref: str, destination: Path, force: bool, progress: bool | None) -> None:
    """Write REF's file or folder into DESTINATION (default: here), checking every sha256."""
    from scorehost.cli.progress import BarProgress

    written = _open(ctx).download(ref, destination, overwrite=force, progress=BarProgress(progress))
    click.echo(f"wrote {written}")


@models_group.command("delete")
@click.argument("ref")
@click.option("--force", is_flag=True, help="Delete even if aliases point to it (they are removed).")
@click.pass_context
@_registry_errors
def delete_command(ctx: click.Context, ref: str, force: bool) -> None:
    """Delete one version; its number is never given to another version."""
    result = _open(ctx).delete(ref, force=force)
    removed = f"; removed aliases {', '.join(result.aliases_removed)}" if result.aliases_removed else ""
    freed = (
        "space is reclaimed by `scorehost models gc` (a registration was in progress)"
        if result.reclaim_deferred
        else f"freed {_size(result.bytes_freed)}"
    )
    click.echo(f"deleted {result.name}:{result.version}{removed}; {freed}")


@models_group.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--remove", is_flag=True, help="Remove the alias instead of setting it.")
@click.pass_context
@_registry_errors
def alias_command(ctx: click.Context, name: str, alias: str, version: str | None, remove: bool) -> None:
    """Point NAME:ALIAS at VERSION (a number or another alias), or --remove it."""
    registry = _open(ctx)
    if remove:
        if version is not None:
            raise click.UsageError("--remove takes no VERSION")
        click.echo(f"removed {name}:{alias} (it pointed to version {registry.remove_alias(name, alias)})")
        return
    if version is None:
        raise click.UsageError("give the VERSION the alias should point to, or --remove")
    target = registry.set_alias(name, alias, version)
    click.echo(f"{name}:{alias} -> {target.ref}")


@models_group.command("verify")
@click.argument("ref", required=False)
@json_option
@progress_option
@click.pass_context
@_registry_errors
def verify_command(ctx: click.Context, ref: str | None, as_json: bool, progress: bool | None) -> None:
    """Re-hash stored files (of REF, or of every version); exit 1 if any is damaged or missing."""
    from scorehost.cli.progress import BarProgress

    report = _open(ctx).verify(ref, progress=BarProgress(progress))
    if as_json:
        _echo_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(f"damaged: {problem}", err=True)
        verdict = "all intact" if report.ok else f"{len(report.problems)} damaged"
        click.echo(f"checked {report.files} files of {report.versions} versions ({_size(report.bytes)}): {verdict}")
    if not report.ok:
        if not as_json:
            click.echo("register the damaged versions again from their original files", err=True)
        sys.exit(1)


@models_group.command("gc")
@click.pass_context
@_registry_errors
def gc_command(ctx: click.Context) -> None:
    """Free the space of files no version uses, and of serving layouts of deleted versions."""
    report = _open(ctx).gc()
    click.echo(f"removed {report.blobs} unused files ({_size(report.bytes_freed)}) and {report.layouts} stale layouts")
