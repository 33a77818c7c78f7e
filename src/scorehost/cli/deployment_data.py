"""`scorehost deployments data`: read a deployment's collected data back, as JSON lines, CSV or Parquet."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from scorehost.cli.controlplane_client import cli_errors, client_of
from scorehost.cli.workspace import home_option

__all__ = ["data_command"]

_EPILOG = """
\b
Examples:
  scorehost deployments data my-endpoint blue
  scorehost deployments data my-endpoint blue --collection model_inputs --since 1h --format csv > inputs.csv
  scorehost deployments data my-endpoint blue --format parquet --output rows.parquet

\b
The files themselves are under the workspace, in collected/ENDPOINT/DEPLOYMENT/COLLECTION/yyyy/MM/dd/HH/, one
JSON object per line; pandas and DuckDB read them directly (docs/data-collection.md).
"""


def _instant(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """`1h`, `30m`, `2d` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None:
        return None
    from scorehost.config import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("write an age (30m, 1h, 7d) or an ISO 8601 time (2026-12-07T10:00:00Z)") from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


@click.command("data", epilog=_EPILOG)
@click.argument("endpoint")
@click.argument("name")
@click.option(
    "--collection",
    "collections",
    multiple=True,
    help="Only this collection (request, response, model_inputs, ...); repeatable.  [default: all]",
)
@click.option("--since", callback=_instant, help="Rows from this time on: an age (1h, 7d) or an ISO 8601 time.")
@click.option("--until", callback=_instant, help="Rows before this time: an age or an ISO 8601 time.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the rows as stored; csv and parquet: one row per record, a DataFrame's columns spread out.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here.  [default: stdout]")
@home_option
@cli_errors
def data_command(
    endpoint: str,
    name: str,
    collections: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    output_format: str,
    output: Path | None,
    home: Path | None,
) -> None:
    """Print deployment NAME's collected data, oldest first: what its YAML's data_collector (or
    `deployments create --collect`) collects."""
    import orjson

    from scorehost.collection.reader import to_csv, to_parquet

    if output_format == "parquet" and output is None:
        raise click.UsageError("--format parquet writes a file: add --output FILE")
    with client_of(home) as client:
        lines = client.deployment_data(endpoint, name, collections=collections, since=since, until=until)
        if output_format == "jsonl":
            stream = open(output, "wb") if output is not None else sys.stdout.buffer  # noqa: SIM115
            try:
                for line in lines:
                    stream.write(line + b"\n")
            finally:
                if output is not None:
                    stream.close()
                else:
                    stream.flush()
            return
        rows = (orjson.loads(line) for line in lines)
        if output_format == "parquet":
            assert output is not None
            to_parquet(rows, output)
            return
        if output is None:
            to_csv(rows, sys.stdout)
        else:
            with open(output, "w", newline="", encoding="utf-8") as text:
                to_csv(rows, text)
