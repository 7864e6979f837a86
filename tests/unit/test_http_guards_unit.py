"""The rules of ``node.api.guards`` (SPEC 3.5) and the ``allow_host`` setting, without a server.

The HTTP behaviour on a real node is in ``tests/functional/test_http_guards.py``; here every
branch of the parsing (``Host`` forms, IPv6, ports, wildcard binds, ``Origin`` forms, media type
parameters, the URL's size in bytes, the parser's refusals) and the setting's three sources
(flag, environment, TOML file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong

from node.api.guards import (
    MAX_HEADER_BYTES,
    MAX_URL_BYTES,
    PARSER_MAX_LINE,
    GuardError,
    HostPolicy,
    check_content_type,
    check_host,
    check_origin,
    check_target,
    split_authority,
)
from node.api.parser_errors import parse_error_answer
from node.config import ConfigError, resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("LocalHost", ("localhost", None)),
        ("localhost.:1", ("localhost", 1)),
        ("[::1]:18444", ("::1", 18444)),
        ("[0:0::1]", ("::1", None)),
        ("node.example:443", ("node.example", 443)),
    ],
)
def test_split_authority(text: str, expected: tuple[str, int | None]) -> None:
    assert split_authority(text) == expected


@pytest.mark.parametrize(
    "text", ["", "::1", "[::1", "[::1]x", "a:b:c", "h:0", "h:65536", "h:1x", "a b", "ev/il", "-a"]
)
def test_split_authority_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        split_authority(text)


def refused(fn: object, *args: object, status: int = 403) -> None:
    with pytest.raises(GuardError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.status == status


def test_loopback_bind_allows_the_loopback_names_on_its_port_only() -> None:
    policy = HostPolicy.for_bind("127.0.0.1", 18444)
    for host in ("127.0.0.1:18444", "localhost:18444", "[::1]:18444"):
        check_host(policy, host)
    for host in ("127.0.0.1", "127.0.0.1:18445", "10.0.0.1:18444", "evil.example:18444", None):
        refused(check_host, policy, host)


def test_a_specific_bind_allows_only_itself() -> None:
    policy = HostPolicy.for_bind("10.213.5.2", 18844)
    check_host(policy, "10.213.5.2:18844")
    for host in ("127.0.0.1:18844", "localhost:18844", "10.213.5.3:18844", "evil:18844"):
        refused(check_host, policy, host)


def test_a_wildcard_bind_allows_ip_literals_and_localhost_not_names() -> None:
    for bind in ("0.0.0.0", "::"):
        policy = HostPolicy.for_bind(bind, 80)
        for host in ("10.1.2.3", "192.168.1.5:80", "[fe80::1]", "localhost", "127.0.0.1"):
            check_host(policy, host)
        for host in ("node.example", "10.1.2.3:81", "rebind.attacker.test"):
            refused(check_host, policy, host)


def test_allowed_names_are_normalized() -> None:
    policy = HostPolicy.for_bind("127.0.0.1", 9, ["Node.Example."])
    check_host(policy, "node.example:9")
    check_host(policy, "NODE.EXAMPLE.:9")
    refused(check_host, policy, "node.example.evil:9")


def test_origin_must_be_the_requests_own_on_state_changing_methods() -> None:
    own = ("127.0.0.1", 18444)
    check_origin("POST", None, own)
    check_origin("POST", "http://127.0.0.1:18444", own)
    check_origin("POST", "https://127.0.0.1:18444", own)
    check_origin("GET", "http://evil.example", own)  # a read: CORS keeps the answer from it
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        refused(check_origin, method, "http://evil.example", own)
    for origin in (
        "null",
        "http://127.0.0.1:18445",
        "http://localhost:18444",
        "http://127.0.0.1",
        "http://127.0.0.1:18444/path",
        "file://",
        "http://[::1",
    ):
        refused(check_origin, "POST", origin, own)
    check_origin("POST", "http://node.example", ("node.example", None))
    check_origin("POST", "http://node.example:80", ("node.example", None))
    refused(check_origin, "POST", "https://node.example", ("node.example", None))


def test_content_types() -> None:
    for ok in (
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/msgpack",
    ):
        check_content_type(ok)
    for bad in (
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/json; foo=bar",
        "application/msgpack; charset=utf-8",
        "application/x-msgpack",
        "application/octet-stream",
    ):
        refused(check_content_type, bad, status=415)
    check_content_type("application/msgpack", True)
    refused(check_content_type, "application/json", True, status=415)


def test_the_url_limit_counts_bytes_as_sent() -> None:
    assert MAX_URL_BYTES == 8190  # docs/API.md
    check_target("/" + "a" * (MAX_URL_BYTES - 1))
    with pytest.raises(GuardError) as info:
        check_target("/" + "a" * MAX_URL_BYTES)
    assert (info.value.status, info.value.code) == (414, "uri-too-long")
    assert "8,191 bytes" in info.value.message and "8,190 bytes" in info.value.message
    # aiohttp decodes the target as UTF-8 with surrogateescape: bytes, not characters, count.
    check_target("/" + "é" * ((MAX_URL_BYTES - 1) // 2))
    refused(check_target, "/" + "é" * (MAX_URL_BYTES // 2), status=414)
    refused(check_target, "/" + "\udcff" * MAX_URL_BYTES, status=414)  # undecodable bytes


def test_the_parsers_refusals_are_told_apart() -> None:
    """The limit a ``LineTooLong`` names says which line was too long: the two must differ."""
    assert PARSER_MAX_LINE > MAX_URL_BYTES and PARSER_MAX_LINE != MAX_HEADER_BYTES
    long_line = LineTooLong(b"/aaa...", PARSER_MAX_LINE)
    assert parse_error_answer(long_line, MAX_HEADER_BYTES)[:2] == (414, "uri-too-long")
    long_field = LineTooLong(b"bbb...", MAX_HEADER_BYTES)
    answer = parse_error_answer(long_field, MAX_HEADER_BYTES)
    assert answer[:2] == (431, "request-header-fields-too-large")
    for exc in (BadHttpMessage("Too many headers received"), BadHttpMethod("\x16\x03")):
        status, code, message = parse_error_answer(exc, MAX_HEADER_BYTES)
        assert (status, code) == (400, "bad-request") and message


def test_allow_host_setting_from_flag_environment_and_file(tmp_path: Path) -> None:
    assert resolve({}, environ={}).allow_host == ()
    env = {"TALLY_ALLOW_HOST": "a.example, B.example"}
    assert resolve({}, environ=env).allow_host == ("a.example", "b.example")
    assert resolve({"allow_host": ["c.example"]}, environ=env).allow_host == ("c.example",)
    config = tmp_path / "tally.toml"
    config.write_text('allow_host = ["d.example", "10.0.0.1"]\n')
    assert resolve({}, environ={}, config_path=config).allow_host == ("d.example", "10.0.0.1")
    for bad in ({"allow_host": ["evil.example/x"]}, {"allow_host": ["a:1"]}):
        with pytest.raises(ConfigError, match="allow_host"):
            resolve(bad, environ={})
    config.write_text("allow_host = 5\n")
    with pytest.raises(ConfigError, match="allow_host"):
        resolve({}, environ={}, config_path=config)
