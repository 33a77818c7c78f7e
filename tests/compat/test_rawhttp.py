"""@rawhttp: a process-wide flag plus a mark on the function, and a module light enough for the host."""

from __future__ import annotations

import functools
import subprocess
import sys

import scorehost
from scorehost.compat import raw_http_requested, rawhttp, reset_raw_http_requested
from scorehost.compat.rawhttp import RAW_HTTP_ATTRIBUTE


def test_the_flag_is_off_until_a_function_is_decorated() -> None:
    assert not raw_http_requested()

    def run(request: object) -> object:
        return request

    assert rawhttp(run) is run
    assert raw_http_requested()
    assert getattr(run, RAW_HTTP_ATTRIBUTE) is True


def test_decorating_any_function_switches_the_process_to_raw() -> None:
    @rawhttp
    def helper() -> None:
        pass

    def run(request: object) -> object:
        return request

    assert raw_http_requested()
    assert not hasattr(run, RAW_HTTP_ATTRIBUTE)


def test_reset_forgets_earlier_uses() -> None:
    rawhttp(lambda request: request)
    reset_raw_http_requested()
    assert not raw_http_requested()


def test_a_callable_that_cannot_be_marked_still_sets_the_flag() -> None:
    partial = functools.partial(print, "x")
    assert rawhttp(len) is len
    assert rawhttp(partial) is partial
    assert raw_http_requested()


def test_scorehost_exports_the_same_objects() -> None:
    from scorehost.compat.aml_request import AMLRequest
    from scorehost.compat.aml_response import AMLResponse

    assert (scorehost.rawhttp, scorehost.AMLRequest, scorehost.AMLResponse) == (rawhttp, AMLRequest, AMLResponse)
    assert {"AMLRequest", "AMLResponse", "rawhttp"} <= set(scorehost.__all__)


def test_the_rawhttp_module_and_scorehost_do_not_import_werkzeug() -> None:
    code = (
        "import sys, scorehost, scorehost.compat.rawhttp\n"
        "from scorehost.compat import rawhttp, raw_http_requested\n"
        "assert callable(rawhttp), rawhttp\n"
        "print(sorted(name for name in sys.modules if name.startswith('werkzeug')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
