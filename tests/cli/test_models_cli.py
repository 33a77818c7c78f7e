"""`scorehost models` end to end: the installed command in subprocesses, on real SQLite files and stores."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCOREHOST = Path(sys.executable).parent / "scorehost"

# Variables that make rich treat a pipe as a terminal (or not), and a width that would change wrapping.
_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS", "LINES")

SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Ran:
    """What a finished command printed."""

    out: str
    err: str


def _env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _TERMINAL_VARIABLES}
    return {**env, **extra}


def _command(args: tuple[str | Path, ...]) -> list[str]:
    return [str(SCOREHOST), "models", *map(str, args)]


def _checked(args: tuple[str | Path, ...], done: subprocess.CompletedProcess[str], code: int) -> Ran:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, f"{args}: exit {done.returncode}, expected {code}:\n{done.stdout}{done.stderr}"
    return Ran(done.stdout, done.stderr)


def models(*args: str | Path, code: int = 0, cwd: Path | None = None) -> Ran:
    """Run `scorehost models ARGS` (SCOREHOST_HOME: the test's own); check its exit status, and that no traceback."""
    done = subprocess.run(_command(args), capture_output=True, text=True, env=_env(), cwd=cwd, timeout=60)
    return _checked(args, done, code)


def _one_line(ran: Ran) -> str:
    assert ran.out == ""
    lines = ran.err.splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("Error: "), ran.err
    return lines[0].removeprefix("Error: ")


def error(*args: str | Path) -> str:
    """The message of a command that must fail with exit 1 and one line on stderr, nothing on stdout."""
    return _one_line(models(*args, code=1))


def errors(*commands: tuple[str | Path, ...]) -> list[str]:
    """`error()` of several commands that change nothing, run at once (each start-up costs a third of a second)."""
    processes = [
        subprocess.Popen(_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for args in commands
    ]
    outputs = [process.communicate(timeout=60) for process in processes]  # all read before any check fails
    return [
        _one_line(_checked(args, subprocess.CompletedProcess(args, process.returncode, out, err), 1))
        for args, process, (out, err) in zip(commands, processes, outputs, strict=True)
    ]


def usage_error(*args: str | Path) -> str:
    """The message of a command that click refuses (exit 2, usage shown above the message)."""
    ran = models(*args, code=2)
    assert ran.out == ""
    assert ran.err.startswith("Usage: scorehost models "), ran.err
    return ran.err.splitlines()[-1].removeprefix("Error: ")


def as_json(*args: str | Path) -> Any:
    """Run a command with --json and parse what it printed."""
    return json.loads(models(*args, "--json").out)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by POSIX path relative to it."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def blob(home: Path, digest: str) -> Path:
    """Where the store keeps the bytes with this sha256."""
    return home / "store" / "sha256" / digest[:2] / digest


def blobs(home: Path) -> set[str]:
    return {path.name for path in (home / "store" / "sha256").glob("*/*")}


def overwrite(path: Path, data: bytes) -> None:
    """Damage a stored blob as a disk or a careless user would: it is read-only, so chmod first."""
    assert path.stat().st_mode & 0o777 == 0o444
    path.chmod(0o644)
    path.write_bytes(data)


def rows(table: str) -> list[list[str]]:
    """A piped table's lines, split into cells (the tests keep cells free of spaces)."""
    lines = table.splitlines()
    for line in lines:
        assert line == line.rstrip(), f"trailing spaces: {line!r}"
    return [line.split() for line in lines]


@dataclass
class Sources:
    """A model file and a model folder to register."""

    file: Path
    folder: Path


@pytest.fixture
def home() -> Path:
    """The SCOREHOST_HOME every command of the test uses (a fresh folder, set by conftest's clean_environ)."""
    return Path(os.environ["SCOREHOST_HOME"])


@pytest.fixture
def sources(tmp_path: Path) -> Sources:
    model = tmp_path / "src" / "model.pkl"
    model.parent.mkdir()
    model.write_bytes(bytes(range(256)) * 10)
    folder = tmp_path / "src" / "retrained"
    (folder / "weights").mkdir(parents=True)
    (folder / "config.json").write_text('{"layers": 3}\n')
    (folder / "weights" / "encoder.bin").write_bytes(bytes((i * 7) % 256 for i in range(5000)))
    (folder / "notes with space.txt").write_text("retrained on May data\n")
    return Sources(model, folder)


# --- help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "usage", "explained"),
    [
        (
            [],
            "[OPTIONS] COMMAND [ARGS]...",
            [
                "--home DIR",
                "(SCOREHOST_HOME).  [default: ~/.scorehost]",
                "alias     Point an alias (e.g. production) at a version.",
                "delete    Delete one version; its number is never reused.",
                "download  Copy a version's file or folder out, verified.",
                "gc        Free the space of unused files and of stopped servers.",
                "list      List models, or the versions of one model.",
                "register  Store a file or folder as a model's next version.",
                "show      Show one version with its files' sha256s.",
                "verify    Re-hash stored files; exit 1 if any is damaged.",
                "A reference (REF) is NAME (the latest version), NAME:VERSION, NAME:ALIAS or NAME:latest.",
                "scorehost models alias digits production 1",
            ],
        ),
        (
            ["register"],
            "[OPTIONS] NAME PATH",
            [
                "NAME is the model's name",
                "its first registration is version 1",
                "PATH is a file, or a folder",
                "-t, --tag TEXT",
                "-p, --property TEXT",
                "-d, --description TEXT",
                "--progress / --no-progress",
                "[default: only on a terminal]",
                "Print the new version as JSON.",
            ],
        ),
        (["list"], "[OPTIONS] [NAME]", ["List models (one row each), or the versions of model NAME", "--json"]),
        (["show"], "[OPTIONS] REF", ["each file with its size and sha256", "REF is NAME (its latest version)"]),
        (
            ["download"],
            "[OPTIONS] REF [DESTINATION]",
            [
                "into the folder DESTINATION (default: here)",
                "DESTINATION/model.pkl",
                "a damaged model writes",
                "--force",
            ],
        ),
        (
            ["delete"],
            "[OPTIONS] REF",
            ["never given to another version", "a bare NAME is refused", "--force"],
        ),
        (
            ["alias"],
            "[OPTIONS] NAME ALIAS [VERSION]",
            [
                "Point NAME:ALIAS at VERSION",
                "ALIAS is a name such as production",
                "VERSION is a version number or another alias",
                "--remove",
            ],
        ),
        (["verify"], "[OPTIONS] [REF]", ["of every version when REF is left out", "exit 1", "--json", "--progress"]),
        (["gc"], "[OPTIONS]", ["Free the space of files no version uses", "killed registrations", "serve --model"]),
    ],
    ids=["group", "register", "list", "show", "download", "delete", "alias", "verify", "gc"],
)
def test_help_explains_the_arguments(command: list[str], usage: str, explained: list[str], home: Path) -> None:
    out = models(*command, "--help").out
    assert out.startswith(f"Usage: scorehost models {' '.join(command)}{' ' if command else ''}{usage}\n"), out
    # Help text as one line per paragraph, so a phrase wrapped at 80 columns is still found.
    flat = re.sub(r"\n(?!\n) *", " ", out)
    for text in explained:
        assert text in out or text in flat, text
    assert not re.search(r"^  [a-z]+ +.*\.\.\.$", out, re.M), out  # no command's short help cut off
    assert list(home.iterdir()) == []  # help opens no registry


# --- register --------------------------------------------------------------------------------------


def test_register_a_file_and_a_folder(home: Path, sources: Sources) -> None:
    described = ["-d", "first cut", "--tag", "team=vision", "-t", "url=s3://a/b?x=1", "-p", "accuracy=0.97"]
    out = models("register", "m", sources.file, *described).out
    assert re.fullmatch(r"registered m:1 \(model\.pkl: 1 file, 2\.6 kB, digest [0-9a-f]{12}\)\n", out), out
    assert (home / "registry.db").is_file()

    started = datetime.now(UTC)
    folder = as_json("register", "m", sources.folder)
    files = tree(sources.folder)
    assert folder == {
        "name": "m",
        "version": 2,
        "kind": "folder",
        "root": "retrained",
        "sha256": folder["sha256"],
        "size": sum(len(data) for data in files.values()),
        "file_count": 3,
        "description": "",
        "created_at": folder["created_at"],
        "tags": {},
        "properties": {},
        "aliases": [],
    }
    assert SHA256.fullmatch(folder["sha256"])
    created = datetime.fromisoformat(folder["created_at"])
    assert created.tzinfo is not None
    assert started - timedelta(seconds=2) <= created <= datetime.now(UTC) + timedelta(seconds=1)

    first = as_json("show", "m:1")
    assert (first["version"], first["kind"], first["root"], first["size"]) == (1, "file", "model.pkl", 2560)
    assert first["description"] == "first cut"
    assert first["tags"] == {"team": "vision", "url": "s3://a/b?x=1"}  # only the first '=' splits
    assert first["properties"] == {"accuracy": "0.97"}

    # The same bytes again: a new version with the same digest, stored once.
    before = blobs(home)
    again = as_json("register", "m", sources.file)
    assert (again["version"], again["sha256"]) == (3, first["sha256"])
    stored = {sha256(sources.file)} | {sha256(path) for path in sources.folder.rglob("*") if path.is_file()}
    assert blobs(home) == before == stored


def test_register_refuses_bad_input(home: Path, sources: Sources, tmp_path: Path) -> None:
    assert usage_error("register", "m", sources.file, "--tag", "novalue") == (
        "Invalid value for '--tag' / '-t': 'novalue' is not KEY=VALUE (e.g. team=vision)"
    )
    missing = tmp_path / "nowhere" / "model.pkl"
    (tmp_path / "empty").mkdir()
    assert errors(
        ("register", "m", missing),
        ("register", "m", tmp_path / "empty"),
    ) == [
        f"cannot register {missing}: no such file or folder",
        f"cannot register {tmp_path / 'empty'}: the folder has no files",
    ]
    assert usage_error("register", "../x", sources.file) == (
        "Invalid value for 'NAME': '../x' is not a valid model name: use letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, at most 255 characters"
    )
    assert as_json("list") == []
    assert blobs(home) == set()


def test_arguments_and_file_names_that_are_not_utf8_are_refused_by_name(home: Path, sources: Sources) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which the database cannot store."""
    run = [os.fsencode(SCOREHOST), b"models", b"register", b"m", os.fsencode(sources.file)]
    for extra, message in [
        ([b"--tag", b"k=\xff"], b"Error: tag 'k' is not UTF-8 text: '\\udcff'\n"),
        ([b"--description", b"x\x80"], b"Error: the description is not UTF-8 text: 'x\\udc80'\n"),
    ]:
        done = subprocess.run(run + extra, capture_output=True, env=_env(), timeout=60)
        assert (done.returncode, done.stderr) == (1, message)
    folder = sources.folder.parent / "odd"
    folder.mkdir()
    (Path(os.fsdecode(os.fsencode(folder) + b"/w\xff.bin"))).write_bytes(b"x")
    assert (
        error("register", "m", folder)
        == f"cannot register {folder}/w\\udcff.bin: its name is not UTF-8 text; rename it"
    )
    assert as_json("list") == []


# --- list ------------------------------------------------------------------------------------------


def test_list_tables_for_people_and_json_for_scripts(home: Path, sources: Sources, tmp_path: Path) -> None:
    empty = models("list")
    assert (empty.out, empty.err) == ("", "no models registered; add one with `scorehost models register NAME PATH`\n")

    long = "retrained on May data with the new tokenizer, " * 4  # longer than any terminal: never wrapped
    models("register", "alpha", sources.file, "-t", "team=vision", "-t", "stage=dev")
    models("register", "alpha", sources.folder, "-d", long.strip())
    models("register", "beta", sources.file)
    models("alias", "alpha", "production", "1")
    # --home wins over SCOREHOST_HOME: gamma is in neither listing below.
    other = tmp_path / "other-home"
    models("--home", other, "register", "gamma", sources.file)
    assert [summary["name"] for summary in as_json("--home", other, "list")] == ["gamma"]
    assert [summary["name"] for summary in as_json("list", "--home", other)] == ["gamma"]  # after it too
    assert (other / "registry.db").is_file()

    assert rows(models("list").out) == [  # one row per model
        ["NAME", "VERSIONS", "LATEST", "ALIASES"],
        ["alpha", "2", "2", "production=1"],
        ["beta", "1", "1", "-"],
    ]
    summaries = as_json("list")
    assert [{k: v for k, v in summary.items() if k != "created_at"} for summary in summaries] == [
        {"name": "alpha", "versions": 2, "latest": 2, "aliases": {"production": 1}},
        {"name": "beta", "versions": 1, "latest": 1, "aliases": {}},
    ]
    assert {datetime.fromisoformat(summary["created_at"]).tzinfo for summary in summaries} == {UTC}

    lines = models("list", "alpha").out.splitlines()  # one row per version, each on one line however long
    assert len(lines) == 3, lines
    assert lines[0].split() == ["VERSION", "ALIASES", "SIZE", "FILES", "CREATED", "TAGS", "DESCRIPTION"]
    assert re.fullmatch(r"1\s+production\s+2\.6 kB\s+1\s+\S+Z\s+stage=dev team=vision\s+-", lines[1]), lines[1]
    assert re.fullmatch(rf"2\s+-\s+5\.0 kB\s+3\s+\S+Z\s+-\s+{re.escape(long.strip())}", lines[2]), lines[2]
    assert all(line == line.rstrip() for line in lines)
    versions = as_json("list", "alpha")
    assert [(v["version"], v["aliases"], v["tags"], v["description"]) for v in versions] == [
        (1, ["production"], {"team": "vision", "stage": "dev"}, ""),
        (2, [], {}, long.strip()),
    ]


# --- show ------------------------------------------------------------------------------------------


def test_show_by_version_alias_and_latest(sources: Sources) -> None:
    models("register", "m", sources.file, "-p", "accuracy=0.97")
    models("register", "m", sources.folder, "-t", "team=vision")
    models("alias", "m", "production", "1")

    by_number = as_json("show", "m:1")
    assert by_number == as_json("show", "m:production")
    assert by_number["aliases"] == ["production"]
    assert by_number["files"] == [{"path": "model.pkl", "sha256": sha256(sources.file), "size": 2560}]

    latest = as_json("show", "m:latest")
    assert latest["version"] == 2
    expected = {f"retrained/{path}": data for path, data in tree(sources.folder).items()}
    assert latest["files"] == [
        {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for path, data in sorted(expected.items())
    ]

    table = models("show", "m").out  # the latest, for people
    facts = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in table.split("\n\n")[0].splitlines())
    assert facts == {
        "name": "m",
        "version": "2",
        "aliases": "-",
        "description": "-",
        "created": latest["created_at"],
        "stored as": "retrained (a folder)",
        "size": "5.0 kB (5036 bytes), 3 files",
        "digest": f"{latest['sha256']} (sha256 of the file list)",
        "tags": "team=vision",
        "properties": "-",
    }
    files = table.split("\n\n")[1].splitlines()
    assert files[0].split() == ["PATH", "SIZE", "SHA256"]
    for line, (path, data) in zip(files[1:], sorted(expected.items()), strict=True):
        assert line.startswith(path), line
        assert line.endswith(hashlib.sha256(data).hexdigest()), line

    table = models("show", "m:production").out
    assert re.search(r"^aliases +production$", table, re.M), table
    assert re.search(r"^properties +accuracy=0\.97$", table, re.M), table
    assert re.search(r"^size +2\.6 kB \(2560 bytes\), 1 file$", table, re.M), table
    assert re.search(rf"^model\.pkl +2\.6 kB +{sha256(sources.file)}$", table, re.M), table


# --- download --------------------------------------------------------------------------------------


def test_download_a_file_and_a_folder(home: Path, sources: Sources, tmp_path: Path) -> None:
    models("register", "m", sources.file)
    models("register", "m", sources.folder)
    out = tmp_path / "out"

    assert models("download", "m:1", out).out == f"downloaded m:1 to {out / 'model.pkl'} (1 file, 2.6 kB)\n"
    assert (out / "model.pkl").read_bytes() == sources.file.read_bytes()
    # A copy, not a link into the store: editing it cannot damage the registered bytes.
    assert (out / "model.pkl").stat().st_ino != blob(home, sha256(sources.file)).stat().st_ino

    here = tmp_path / "here"
    here.mkdir()
    assert models("download", "m", cwd=here).out == "downloaded m:2 to retrained (3 files, 5.0 kB)\n"
    assert tree(here / "retrained") == tree(sources.folder)

    # Never overwritten without --force.
    (out / "model.pkl").write_bytes(b"local edits")
    assert error("download", "m:1", out) == (
        f"{out / 'model.pkl'} already exists; remove it, choose another folder, or pass --force"
    )
    assert (out / "model.pkl").read_bytes() == b"local edits"
    models("download", "m:1", out, "--force")
    assert (out / "model.pkl").read_bytes() == sources.file.read_bytes()

    # --force replaces a folder whole: a file that is not part of the version does not survive.
    (here / "retrained" / "stale.txt").write_text("old")
    (here / "retrained" / "config.json").write_text("edited")
    assert error("download", "m:2", here).startswith(f"{here / 'retrained'} already exists;")
    models("download", "m:2", here, "--force")
    assert tree(here / "retrained") == tree(sources.folder)
    assert sorted(path.name for path in here.iterdir()) == ["retrained"]  # no scratch folders left

    assert error("download", "m:1", sources.file / "sub") == f"{sources.file / 'sub'}: Not a directory"


# --- delete ----------------------------------------------------------------------------------------


def test_delete_respects_aliases_and_never_reuses_a_number(home: Path, sources: Sources, tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"another model")
    models("register", "m", sources.file)
    models("register", "m", other)
    models("register", "m", sources.file)  # shares version 1's bytes
    models("alias", "m", "production", "2")

    assert error("delete", "m:2") == (
        "m:2 is what m:production points to; move the alias first "
        "(`scorehost models alias m production VERSION`) or delete with --force"
    )
    models("alias", "m", "canary", "production")
    assert re.fullmatch(
        r"deleted m:2; removed (m:canary, m:production|m:production, m:canary); freed 13 bytes\n",
        models("delete", "m:production", "--force").out,
    )
    assert not blob(home, sha256(other)).exists()
    assert error("show", "m:2") == "model 'm' has no version 2 (versions: 1, 3)"

    # A bare NAME is refused: deleting must say which version. m:latest does; version 1's bytes stay.
    refused = usage_error("delete", "m")
    assert refused == "'m' does not say which version to delete; write m:VERSION, m:ALIAS or m:latest"
    assert models("delete", "m:latest").out == "deleted m:3; freed 0 bytes\n"
    assert blob(home, sha256(sources.file)).exists()

    assert models("register", "m", other).out.startswith("registered m:4 (")  # not 2 or 3 again
    (summary,) = as_json("list")
    assert (summary["versions"], summary["latest"], summary["aliases"]) == (2, 4, {})  # versions 1 and 4


# --- alias -----------------------------------------------------------------------------------------


def test_alias_set_move_chain_and_remove(sources: Sources) -> None:
    models("register", "m", sources.file)
    models("register", "m", sources.file)

    assert models("alias", "m", "production", "1").out == "m:production -> m:1\n"
    assert models("alias", "m", "staging", "production").out == "m:staging -> m:1\n"  # to another alias
    assert models("alias", "m", "production", "2").out == "m:production -> m:2 (was m:1)\n"
    (summary,) = as_json("list")
    assert summary["aliases"] == {"production": 2, "staging": 1}  # staging does not follow production

    # Promotion: staging takes the version production points to now.
    assert models("alias", "m", "staging", "production").out == "m:staging -> m:2 (was m:1)\n"
    assert models("alias", "m", "staging", "--remove").out == "removed m:staging (it pointed to m:2)\n"

    assert usage_error("alias", "m", "staging") == "give the VERSION m:staging should point to, or --remove it"
    assert usage_error("alias", "m", "staging", "1", "--remove") == "--remove takes no VERSION"
    assert usage_error("alias", "m", "latest", "1") == (
        "Invalid value for 'ALIAS': 'latest' always means the highest version; choose another alias name"
    )
    assert usage_error("alias", "m", "canary", "99999999999999999999") == (
        "Invalid value for '[VERSION]': '99999999999999999999' is not a version: versions are whole numbers from 1 "
        "to 2147483647"
    )
    assert errors(
        ("alias", "m", "canary", "9"),
        ("alias", "m", "canary", "nightly"),
        ("alias", "m", "staging", "--remove"),
    ) == [
        "model 'm' has no version 9 (versions: 1, 2)",
        "model 'm' has no alias 'nightly' (aliases: production); "
        "set it with `scorehost models alias m nightly VERSION`",
        "model 'm' has no alias 'staging' (aliases: production)",
    ]
    assert as_json("show", "m:production")["aliases"] == ["production"]  # no failed command changed anything


# --- verify, damage and repair ---------------------------------------------------------------------


def test_verify_finds_damage_and_download_refuses_it(home: Path, sources: Sources, tmp_path: Path) -> None:
    models("register", "m", sources.file)
    models("register", "m", sources.folder)
    ran = models("verify")
    assert (ran.out, ran.err) == ("checked 4 files of 2 versions (7.6 kB): all intact\n", "")

    encoder = blob(home, sha256(sources.folder / "weights" / "encoder.bin"))
    overwrite(encoder, b"\0" * 5000)  # same size: only the sha256 tells
    config = blob(home, sha256(sources.folder / "config.json"))
    config.unlink()

    ran = models("verify", "--keep-damaged", code=1)
    assert ran.out == "checked 4 files of 2 versions (7.6 kB): 2 damaged\n"
    assert ran.err.splitlines() == [
        "damaged: m:2 retrained/config.json: missing from the store",
        f"damaged: m:2 retrained/weights/encoder.bin: sha256 is {sha256(encoder)}, {encoder.name} was registered",
        "to repair m:2: register the original files again (`scorehost models register NAME PATH`); the new "
        "version's copy serves every version with the same bytes",
    ]
    report = json.loads(models("verify", "--json", "--keep-damaged", code=1).out)
    assert report["ok"] is False
    assert (report["versions"], report["files"], report["bytes"]) == (2, 4, 7596)
    assert [(p["name"], p["version"], p["path"]) for p in report["problems"]] == [
        ("m", 2, "retrained/config.json"),
        ("m", 2, "retrained/weights/encoder.bin"),
    ]
    assert models("verify", "m:1").out == "checked 1 file of 1 version (2.6 kB): all intact\n"

    # A download of the damaged version writes nothing: not into a new folder, not over an old copy.
    fresh = tmp_path / "fresh" / "models"
    message = error("download", "m:2", fresh)
    assert message.startswith("m:2 retrained/config.json: missing from the store; nothing was written to"), message
    assert not (tmp_path / "fresh").exists()
    kept = tmp_path / "kept"
    (kept / "retrained").mkdir(parents=True)
    (kept / "retrained" / "mine.txt").write_text("an older copy")
    assert "nothing was written" in error("download", "m:2", kept, "--force")
    assert tree(kept) == {"retrained/mine.txt": b"an older copy"}

    # Without --keep-damaged, verify moves the damaged file aside; the repair it advises then works.
    damaged = models("verify", code=1).err.splitlines()[1]
    assert f"moved to {home / 'store' / 'damaged' / encoder.name}." in damaged
    assert not encoder.exists()
    assert models("register", "m", sources.folder).out.startswith("registered m:3 (")
    assert models("verify").out == "checked 7 files of 3 versions (12.6 kB): all intact\n"  # m:2 repaired too


def test_registering_damaged_bytes_again_stores_them_afresh(home: Path, sources: Sources) -> None:
    models("register", "m", sources.file)
    overwrite(blob(home, sha256(sources.file)), b"\xff" * 2560)  # same size as the original
    models("verify", code=1)  # found, and moved aside
    models("register", "m", sources.file)
    assert models("verify").out == "checked 2 files of 2 versions (5.1 kB): all intact\n"


# --- gc --------------------------------------------------------------------------------------------


def test_gc_frees_what_a_delete_left_behind(home: Path, sources: Sources, tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * 1500)
    models("register", "m", sources.file)
    models("register", "m", other)

    # A registration in flight (its shared lock on the store) makes delete leave the bytes to gc.
    with open(home / "store" / "lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        assert models("delete", "m:2").out == (
            "deleted m:2; space is reclaimed by `scorehost models gc` (a registration was in progress)\n"
        )
    assert blob(home, sha256(other)).exists()
    assert models("gc").out == (
        "removed 1 unused file (1.5 kB), 0 scratch files of stopped registrations (0 bytes) "
        "and 0 folders of stopped servers\n"
    )
    assert blobs(home) == {sha256(sources.file)}

    # Without one, delete frees the bytes itself.
    assert models("delete", "m:1").out == "deleted m:1; freed 2.6 kB\n"
    assert blobs(home) == set()


# --- one-line errors -------------------------------------------------------------------------------


def test_unknown_references_are_one_line_errors(sources: Sources, tmp_path: Path) -> None:
    assert error("--home", tmp_path / "empty", "show", "m") == (
        "no model named 'm' (the registry is empty); `scorehost models list` shows them all"
    )
    models("register", "m", sources.file)
    cases = [
        (("show", "nope"), "no model named 'nope' (registered: m); `scorehost models list` shows them all"),
        (("show", "m:7"), "model 'm' has no version 7 (versions: 1)"),
        (
            ("download", "m:prod", tmp_path / "out"),
            "model 'm' has no alias 'prod' (it has no aliases); set it with `scorehost models alias m prod VERSION`",
        ),
    ]
    assert errors(*(args for args, _ in cases)) == [message for _, message in cases]
    assert not (tmp_path / "out").exists()  # failed downloads wrote nothing


def test_malformed_references_are_usage_errors_naming_the_argument(sources: Sources, tmp_path: Path) -> None:
    models("register", "m", sources.file)
    invalid = (
        "is not a valid model name: use letters, digits, '.', '_' and '-', starting with a letter or digit, "
        "at most 255 characters"
    )
    not_a_version = "is not a version: versions are whole numbers from 1 to 2147483647"
    cases = [
        (("show", "m:99999999999999999999999"), f"Invalid value for 'REF': '99999999999999999999999' {not_a_version}"),
        (
            ("delete", "m:99999999999999999999999"),
            f"Invalid value for 'REF': '99999999999999999999999' {not_a_version}",
        ),
        (("verify", "m:0"), f"Invalid value for '[REF]': '0' {not_a_version}"),
        (("show", "m:"), "Invalid value for 'REF': 'm:' ends with ':'; write NAME, NAME:VERSION or NAME:ALIAS"),
        (("show", "../x"), f"Invalid value for 'REF': '../x' {invalid}"),
        (("download", "a/b", tmp_path / "out"), f"Invalid value for 'REF': 'a/b' {invalid}"),
        (("delete", "a/b:1"), f"Invalid value for 'REF': 'a/b' {invalid}"),
        (("list", "a/b"), f"Invalid value for '[NAME]': 'a/b' {invalid}"),
    ]
    for args, message in cases:
        assert usage_error(*args) == message
    assert not (tmp_path / "out").exists()


# --- progress bars ---------------------------------------------------------------------------------

BAR_FROM = 8_000_000  # "8 MB", as the help says and the bar counts


def on_terminal(*args: str | Path) -> Ran:
    """Run `scorehost models ARGS` with stderr on a pseudo-terminal (stdout piped), as in an interactive shell."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SCOREHOST), "models", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=_env(COLUMNS="120", TERM="xterm"),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.stdout.close()
    assert process.wait(60) == 0, out
    return Ran(out, b"".join(chunks).decode())


def assert_bar(err: str, description: str, total: str) -> None:
    """A rich bar with its transfer columns: bytes done of the total, speed, time left."""
    assert description in err, err
    assert f"{total}/{total} MB" in err, err  # finished, in the download column
    assert re.search(r"[\d.]+ [kMG]?B/s", err), err  # the transfer speed column
    assert re.search(r"\d:\d\d:\d\d", err), err  # the time column
    assert "━" in err, err


def test_progress_bars_on_stderr(sources: Sources, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BAR_FROM))
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * (BAR_FROM - 1))

    ran = models("register", "big", big, "--progress")
    assert ran.out.startswith("registered big:1 (big.bin: 1 file, 8.0 MB, digest ")
    assert_bar(ran.err, "registering big", "8.0")
    assert models("register", "big", small, "--progress").err == ""  # under 8 MB: no bar
    assert models("register", "big", big).err == ""  # piped: none by default

    ran = models("download", "big:1", tmp_path / "out", "--progress")
    assert_bar(ran.err, "downloading big:1", "8.0")
    assert (tmp_path / "out" / "big.bin").read_bytes() == big.read_bytes()
    assert_bar(models("verify", "big:1", "--progress").err, "verifying", "8.0")

    # On a terminal the bar is the default, and --no-progress still hides it.
    terminal = on_terminal("register", "big", big)
    assert terminal.out.startswith("registered big:4 (")
    assert_bar(terminal.err, "registering big", "8.0")
    assert on_terminal("register", "big", big, "--no-progress").err == ""


def test_verify_bar_reaches_its_total_with_shared_files(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BAR_FROM))
    models("register", "big", big)
    models("register", "big", big)
    err = models("verify", "--progress").err
    done, total = re.findall(r"([\d.]+)/([\d.]+) MB", err)[-1]
    assert done == total, err


# --- fuzzed arguments ------------------------------------------------------------------------------

_ANY_TEXT = st.text(st.characters(exclude_categories=["Cc"]) | st.sampled_from("\udcff\udc80:=0²"), max_size=30)
_REF_LIKE = st.one_of(
    _ANY_TEXT,
    st.builds("m:{}".format, _ANY_TEXT),
    st.integers(min_value=-(10**25), max_value=10**25).map("m:{}".format),
)
_COMMANDS = st.one_of(
    st.tuples(st.just("show"), _REF_LIKE),
    st.tuples(st.just("list"), _ANY_TEXT),
    st.tuples(st.just("verify"), _REF_LIKE),
    st.tuples(st.just("delete"), _REF_LIKE),
    st.tuples(st.just("alias"), st.just("m"), _ANY_TEXT, st.one_of(_ANY_TEXT, st.integers().map(str))),
    st.tuples(st.just("alias"), st.just("m"), _ANY_TEXT, st.just("--remove")),
    st.builds(lambda key, value: ("register", "m", "MODEL", "--tag", f"{key}={value}"), _ANY_TEXT, _ANY_TEXT),
    st.builds(lambda name: ("register", name, "MODEL"), _ANY_TEXT),
    st.builds(lambda text: ("register", "m", "MODEL", "--description", text), _ANY_TEXT),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=_COMMANDS)
def test_fuzzed_arguments_get_an_answer_or_a_one_line_error(command: tuple[str, ...], sources: Sources) -> None:
    from scorehost.cli.models import models_group

    args = [str(sources.file) if arg == "MODEL" else arg for arg in command]
    done = CliRunner().invoke(models_group, args, catch_exceptions=True)
    if not isinstance(done.exception, SystemExit | type(None)):
        raise AssertionError(f"{args!r} raised") from done.exception
    assert done.exit_code in (0, 1, 2), (args, done.output)
