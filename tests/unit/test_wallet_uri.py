"""Payment URIs (SPEC 4): ``tally:<address>?amount=<TLY>&label=...&message=...``, BIP21's rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus import encode_address, get_params
from wallet.uri import (
    MAX_URI_LENGTH,
    PaymentRequest,
    PaymentURIError,
    format_tly,
    format_uri,
    parse_uri,
)

REGTEST = get_params("regtest")
MAIN = get_params("main")
ADDR = encode_address(bytes(range(20)), REGTEST)


def test_the_spec_shape() -> None:
    uri = format_uri(PaymentRequest(ADDR, 125_000_000, "apples", "two kilos"))
    assert uri == f"tally:{ADDR}?amount=1.25&label=apples&message=two%20kilos"
    assert parse_uri(uri, REGTEST) == PaymentRequest(ADDR, 125_000_000, "apples", "two kilos")


def test_address_alone() -> None:
    assert format_uri(PaymentRequest(ADDR)) == f"tally:{ADDR}"
    assert parse_uri(f"tally:{ADDR}", REGTEST) == PaymentRequest(ADDR)


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (1, "0.00000001"),
        (100_000_000, "1"),
        (2_100_000_000_000_000, "21000000"),
        (150_000_000, "1.5"),
        (10, "0.0000001"),
    ],
)
def test_amounts_are_written_without_trailing_zeros(units: int, text: str) -> None:
    assert format_tly(units) == text


def test_text_is_percent_encoded_utf8() -> None:
    request = PaymentRequest(ADDR, 1, "Café & Co = good?", "100% #1 / día")
    uri = format_uri(request)
    assert "&" not in uri.split("label=", 1)[1].split("&message", 1)[0]
    assert "Caf%C3%A9%20%26%20Co%20%3D%20good%3F" in uri
    assert parse_uri(uri, REGTEST) == request


TEXT = st.none() | st.text(
    st.characters(min_codepoint=0x20, exclude_characters="\x7f", codec="utf-8"),
    min_size=1,
    max_size=80,
)


@given(amount=st.none() | st.integers(1, 21_000_000 * 10**8), label=TEXT, message=TEXT)
def test_format_then_parse_gives_the_request_back(
    amount: int | None, label: str | None, message: str | None
) -> None:
    request = PaymentRequest(ADDR, amount, label, message)
    assert parse_uri(format_uri(request), REGTEST) == request


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    assert parse_uri(f"TALLY:{ADDR}?Amount=2", REGTEST).amount == 200_000_000


def test_unknown_parameters_are_ignored_but_required_ones_refuse() -> None:
    assert parse_uri(f"tally:{ADDR}?amount=1&foo=bar", REGTEST).amount == 100_000_000
    with pytest.raises(PaymentURIError, match="needs 'somethingnew'"):
        parse_uri(f"tally:{ADDR}?req-somethingnew=1", REGTEST)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"bitcoin:{ADDR}", "must start with 'tally:'"),
        (ADDR, "must start with 'tally:'"),
        (f"tally:{ADDR[:-1]}X", "bad-checksum"),
        (f"tally:{encode_address(bytes(20), MAIN)}", "wrong-network"),
        (f"tally:{ADDR}?amount=1&amount=2", "given twice"),
        (f"tally:{ADDR}?amount=0", "zero"),
        (f"tally:{ADDR}?amount=-1", "not a decimal"),
        (f"tally:{ADDR}?amount=1e3", "not a decimal"),
        (f"tally:{ADDR}?amount=0.000000001", "more than 8 decimal places"),
        (f"tally:{ADDR}?amount=21000001", "21,000,000"),
        (f"tally:{ADDR}?amount=", "not a decimal"),
        (f"tally:{ADDR}?label", "has no value"),
        (f"tally:{ADDR}?label=%FF", "not UTF-8"),
        (f"tally:{ADDR}?message=a%0Ab", "control characters"),
        (f"tally:{ADDR}?message=" + "a" * MAX_URI_LENGTH, f"at most {MAX_URI_LENGTH}"),
    ],
)
def test_unusable_requests_say_why(uri: str, message: str) -> None:
    with pytest.raises(PaymentURIError, match=message):
        parse_uri(uri, REGTEST)


def test_a_request_too_long_to_write_is_refused() -> None:
    with pytest.raises(PaymentURIError, match="longer than"):
        format_uri(PaymentRequest(ADDR, 1, "x" * 600))
    with pytest.raises(PaymentURIError, match="more than zero"):
        format_uri(PaymentRequest(ADDR, 0))
