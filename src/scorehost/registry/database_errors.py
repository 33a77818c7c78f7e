"""The workspace database's failures as one line: which database (password masked), what failed, and the fix.

Two places raise them. `url_error`: SQLAlchemy cannot make an engine of the URL (it does not parse, it names a
scheme SQLAlchemy does not know such as `postgres://`, its driver is not installed). `explain`, through the
engine's handle_error hook (`install`): connecting failed (the server is down or unreachable, the password is
wrong, the database does not exist), or a working connection reports a problem of the setup rather than of the
statement (permission denied, a read-only server, a lost connection). Every other error (a constraint, a
serialization failure, a lock) passes through unchanged: the code that runs the statement handles those.

The password never appears: the URL is rendered masked, and the driver's own words, where quoted, have it cut out.
"""

from __future__ import annotations

import functools
import re
import urllib.parse

import sqlalchemy as sa
import sqlalchemy.exc

from scorehost.errors import WorkspaceDatabaseError

__all__ = [
    "POSTGRES_EXAMPLE",
    "POSTGRES_INSTALL",
    "async_driver_error",
    "explain",
    "install",
    "masked",
    "password_forms",
    "url_error",
]

POSTGRES_INSTALL = "pip install 'scorehost[postgres]'"
POSTGRES_EXAMPLE = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE"
_VARIABLE = "SCOREHOST_REGISTRY_URL"
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd|sslpassword)=)[^&]*")  # libpq takes it there too
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB", "mssql": "SQL Server"}
# What installs each driver module; psycopg (3) is the one scorehost ships an extra for.
# A deployment's own environment (--environment, a conda file) gets the driver when built for a PostgreSQL
# workspace (environments/runtime.py); one built otherwise needs it named in its requirements.
_IN_ENVIRONMENT = "; a deployment with an environment of its own needs psycopg[binary] in its requirements"
_PACKAGES = {
    "psycopg": POSTGRES_INSTALL + _IN_ENVIRONMENT,
    "psycopg2": "pip install psycopg2-binary",
    "pg8000": "pip install pg8000",
}
_AUTHENTICATION = ("password authentication failed", "authentication failed", "no password supplied", "access denied")
_PACKAGES |= {"pymysql": "pip install pymysql", "MySQLdb": "pip install mysqlclient"}


def masked(url: str | sa.URL) -> str:
    """`url` with its password shown as ***, even when SQLAlchemy cannot parse it (and one in its query too)."""
    if isinstance(url, str):
        try:
            parsed = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            return _QUERY_PASSWORD.sub(r"\1***", _mask_userinfo(url))
    else:
        parsed = url
    host = parsed.host or ""
    if "@" in host:  # an @ in the password, not written %40: SQLAlchemy took the rest of it for the host
        parsed = parsed.set(host="***" + host[host.rindex("@") :])
    return _QUERY_PASSWORD.sub(r"\1***", parsed.render_as_string(hide_password=True))


def _mask_userinfo(text: str) -> str:
    """Everything between the user's name and the last @ masked: a password may hold / : or @ unescaped."""
    head, at, tail = text.rpartition("@")
    start = head.find("//") + 2 if "//" in head else 0
    user, colon, _ = head[start:].partition(":")
    return f"{head[:start]}{user}:***@{tail}" if at and colon else text


def _failure(url: str | sa.URL, what: str, fix: str) -> WorkspaceDatabaseError:
    what = " ".join(what.split())  # one line: drivers' messages span several
    return WorkspaceDatabaseError(f"cannot use the workspace database {masked(url)}: {what}; {fix}")


def password_forms(url: str | sa.URL) -> list[str]:
    """The URL's password as it may appear in text (as is, and percent-encoded): what a log must redact."""
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except (sa.exc.ArgumentError, ValueError):
        return []
    candidates = [str(parsed.password or "")]
    if "@" in (parsed.host or ""):  # an @ in the password, not written %40: the whole of it, as the user meant it
        candidates.append(f"{parsed.password}@{(parsed.host or '').rpartition('@')[0]}")
    for key, value in parsed.query.items():
        if _QUERY_PASSWORD.match(f"?{key}="):
            candidates += [value] if isinstance(value, str) else list(value)
    found: set[str] = set()
    for text in filter(None, candidates):
        found |= {text, urllib.parse.quote_plus(text), urllib.parse.quote(text, safe="")}
    return sorted(found, key=len, reverse=True)


def _scrub(text: str, url: sa.URL) -> str:
    """The driver's words without the password (none of ours quote it, but a driver may echo its input)."""
    for form in password_forms(url):
        text = text.replace(form, "***")
    return text


def _first_line(error: BaseException, url: sa.URL) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return _scrub(lines[0] if lines else type(error).__name__, url)


# -- making the engine ---------------------------------------------------------------------------------------


def _knows_backend(url: sa.URL) -> bool:
    try:
        url.set(drivername=url.get_backend_name()).get_dialect()
    except (sa.exc.ArgumentError, ImportError):
        return False
    return True


def url_error(url: str, error: Exception) -> WorkspaceDatabaseError:
    """The WorkspaceDatabaseError for what `sqlalchemy.create_engine(url)` raised (ArgumentError, ImportError)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return _failure(
            url,
            "this is not a database URL SQLAlchemy can read",
            f"write e.g. {POSTGRES_EXAMPLE} or sqlite:////path/to/registry.db in {_VARIABLE}",
        )
    backend, driver = parsed.get_backend_name(), parsed.drivername.partition("+")[2]
    if isinstance(error, sa.exc.NoSuchModuleError):
        if backend in ("postgres", "pgsql", "psql"):
            return _failure(
                parsed,
                f"SQLAlchemy does not accept {parsed.drivername}://",
                f"write postgresql+psycopg:// instead ({POSTGRES_INSTALL})",
            )
        if driver and _knows_backend(parsed):
            alternative = "write postgresql+psycopg://" if backend == "postgresql" else f"write {backend}://"
            return _failure(
                parsed, f"SQLAlchemy has no driver {driver!r} for {backend}", f"{alternative}, or check the spelling"
            )
        return _failure(
            parsed,
            f"SQLAlchemy knows no database of the kind {backend!r}",
            f"write e.g. {POSTGRES_EXAMPLE} or sqlite:////path/to/registry.db in {_VARIABLE}",
        )
    if isinstance(error, ImportError):
        if _is_async(parsed):  # no use installing it
            return async_driver_error(parsed)
        module = (error.name or parsed.get_driver_name() or "").partition(".")[0]
        install = _PACKAGES.get(module, f"install the Python package that provides {module or 'it'}")
        what = f"its driver is not installed ({_first_line(error, parsed)})"
        if backend == "postgresql" and module != "psycopg":
            default = " (SQLAlchemy's default for postgresql://)" if not driver else ""
            what = f"its driver {module}{default} is not installed"
            install = f"{install}, or write postgresql+psycopg:// ({POSTGRES_INSTALL})"
        return _failure(parsed, what, install)
    return _failure(parsed, f"SQLAlchemy refuses it ({_first_line(error, parsed)})", f"check {_VARIABLE}")


def _is_async(url: sa.URL) -> bool:
    try:
        return bool(url.get_dialect().is_async)
    except (sa.exc.ArgumentError, ImportError):
        return False


def async_driver_error(url: sa.URL) -> WorkspaceDatabaseError:
    """An asyncio driver (asyncpg, aiosqlite) named in the URL: the workspace database needs a blocking one."""
    fix = "write postgresql+psycopg://" if url.get_backend_name() == "postgresql" else "name a blocking driver"
    return _failure(url, f"{url.get_driver_name()} is an asyncio driver, which scorehost cannot use", fix)


# -- connecting and running ------------------------------------------------------------------------------------


def _sqlstate(error: BaseException) -> str:
    """The SQLSTATE of a driver error (psycopg 3: sqlstate, psycopg2: pgcode), or ''."""
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(error, attribute, None)
        if isinstance(value, str):
            return value
    return ""


def _where(url: sa.URL) -> str:
    backend = url.get_backend_name()
    port = url.port or _DEFAULT_PORTS.get(backend)
    host = url.host or "localhost"
    return f"{host}:{port}" if port else host


def _server(url: sa.URL) -> str:
    return f"the {_NAMES.get(url.get_backend_name(), url.get_backend_name())} server"


def _connecting(url: sa.URL, error: BaseException) -> tuple[str, str] | None:
    """(what failed, fix) for a failure to connect that we recognise, from SQLSTATE or the driver's words."""
    text, state = str(error).lower(), _sqlstate(error)
    where, server, user = _where(url), _server(url), url.username or "(none)"
    if "pg_hba.conf" in text:
        return (
            f"{server} at {where} does not accept user {user!r} from this machine (pg_hba.conf)",
            "ask its administrator to allow it, or check the host and user in " + _VARIABLE,
        )
    if state.startswith("28") or any(words in text for words in _AUTHENTICATION):
        return (f"authentication failed for user {user!r}", f"check the user and password in {_VARIABLE}")
    if re.search(r'role ".*" does not exist', text):
        return (f"{server} at {where} has no user {user!r}", f"check the user in {_VARIABLE}, or create it")
    if state == "3D000" or re.search(r'database ".*" does not exist|unknown database', text):
        database = url.database or "(none)"
        create = f"createdb -h {url.host} -p {_where(url).rpartition(':')[2]} -U {user} {database}"
        fix = f"create it ({create}, or CREATE DATABASE), or fix its name in {_VARIABLE}"
        return (f"the database {database!r} does not exist on {server} at {where}", fix)
    if any(words in text for words in ("could not translate host name", "failed to resolve host", "name or service")):
        return (f"the host {url.host!r} cannot be found", f"check the host in {_VARIABLE}")
    if "temporary failure in name resolution" in text or "nodename nor servname" in text:
        return (f"the host {url.host!r} cannot be found", f"check the host in {_VARIABLE}")
    if "connection refused" in text:
        return ("connection refused", f"is {server} running at {where}?")
    if "timeout expired" in text or "timed out" in text:
        return (f"no answer from {where} in time", f"is {server} running at {where}, and reachable from here?")
    if "no route to host" in text or "network is unreachable" in text:
        return (f"{where} cannot be reached from here", f"is {server} running at {where}, and reachable from here?")
    if "no such file or directory" in text and "socket" in text:
        return (f"no server listens on the local socket ({_first_line(error, url)})", "is it running? Or give a HOST")
    if state == "53300" or "too many connections" in text or "connection slots" in text:
        return (f"{server} at {where} has no connection left", "raise its max_connections or stop idle clients")
    if state == "57P03" or "starting up" in text or "shutting down" in text or "recovery mode" in text:
        return (f"{server} at {where} is starting or stopping", "try again in a moment")
    return None


def _sqlite(url: sa.URL, error: BaseException) -> WorkspaceDatabaseError | None:
    text = str(error).lower()
    if "unable to open database file" in text:
        where = url.database or "(none)"
        fix = f"check the path in {_VARIABLE}, or --home" if url.database else f"check {_VARIABLE}"
        return _failure(url, f"SQLite cannot open {where} (its folder is missing or not writable)", fix)
    if "file is not a database" in text:
        return _failure(url, "the file is not a SQLite database", f"point {_VARIABLE} (or --home) at the workspace's")
    return None  # "database is locked" and the rest are the statement's to handle


def explain(
    url: sa.URL, error: BaseException, *, connecting: bool, lost: bool = False
) -> WorkspaceDatabaseError | None:
    """A WorkspaceDatabaseError for a driver's `error`, or None when it is the statement's own (a constraint, a
    serialization failure, a lock). `connecting`: it happened while opening a connection; `lost`: SQLAlchemy
    takes it for a dropped connection."""
    if url.get_backend_name() == "sqlite":
        return _sqlite(url, error) if connecting else None
    state = _sqlstate(error)
    if connecting:
        found = _connecting(url, error)
        if found is not None:
            return _failure(url, *found)
        return _failure(url, f"cannot connect ({_first_line(error, url)})", f"check {_VARIABLE}")
    if state == "42501":  # insufficient_privilege: creating the tables in a database the user does not own
        user = url.username or "the user"
        return _failure(
            url,
            f"permission denied ({_first_line(error, url)})",
            f"let {user} create tables there (GRANT CREATE ON SCHEMA public TO {user}) or make it the database's owner",
        )
    if state == "25006":  # read_only_sql_transaction: a standby
        return _failure(url, "the server is read-only (a standby?)", f"point {_VARIABLE} at the primary")
    if state in ("3D000", "57P01", "57P02", "57P03") or lost:
        found = _connecting(url, error)
        if found is not None:
            return _failure(url, *found)
        lost_how = f"the connection was lost ({_first_line(error, url)})"
        return _failure(url, lost_how, f"is {_server(url)} running at {_where(url)}?")
    return None


def _hook(url: sa.URL, context: sa.engine.ExceptionContext) -> None:
    if getattr(context, "is_pre_ping", False):
        return  # a pooled connection found dead: SQLAlchemy replaces it, and a failure to reconnect comes here again
    found = explain(url, context.original_exception, connecting=context.connection is None, lost=context.is_disconnect)
    if found is not None:
        raise found from context.original_exception


def install(engine: sa.Engine) -> None:
    """Turn the engine's failures to connect, and its setup problems, into WorkspaceDatabaseError."""
    sa.event.listen(engine, "handle_error", functools.partial(_hook, engine.url))
