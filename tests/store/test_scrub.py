"""No secret in any message: a driver's words can spell a password that no URL holds any more
(a password with an unencoded @ is cut by the URL parser, and psycopg names the rest as the
host). ``scrub``, knowing the storage URL, hides it in every form (issue 38). No TensorFlow."""

from __future__ import annotations

import pytest

from tlsweep.errors import ConfigError
from tlsweep.store import _secrets as secrets
from tlsweep.store import mask, open_storage, scrub, storages_opened

# (the storage URL, a driver's message that spells its password in some form, the forms that
# must not survive)
LEAKS = [
    ("postgresql://user:pa@Secret42@127.0.0.1:9/db",
     "failed to resolve host 'Secret42@127.0.0.1': [Errno -2] Name or service not known",
     ["Secret42"]),
    ("postgresql://user:pa@Secret42@127.0.0.1:9/db",  # as written, and percent-encoded
     "dsn 'password=pa@Secret42' rejected; retried with password%3Dpa%40Secret42",
     ["pa@Secret42", "pa%40Secret42", "Secret42"]),
    ("postgresql://user:pa%40Secret42@db.internal/db",  # the driver decoded it
     "authentication for 'pa@Secret42' failed at Secret42@db.internal",
     ["pa@Secret42", "Secret42"]),
    ("postgresql+psycopg://u:a1:Zz/Secret42@Tail99@h:5432/db",  # cut at : / and @ too
     "could not translate host name \"Tail99@h\"; user a1, Zz/Secret42",
     ["Tail99", "Secret42", "a1:Zz/Secret42@Tail99"]),
    ("postgresql://u@h/db?sslmode=require&password=pa%40Secret42",  # in the query
     "connection to 'Secret42@h' refused", ["Secret42"]),
    ("host=h port=5432 user=u password=pa@Secret42 dbname=x",  # libpq's keyword form
     "invalid connection option near Secret42@h", ["Secret42"]),
    ("host=h user=u password='pa@Secret 42' dbname=x",  # quoted keyword value
     "could not connect: 'Secret 42@h' unknown", ["Secret 42"]),
    ("postgresql://u:pa\\Secret42@h/db",  # as Python's repr writes a backslash
     "{'password': 'pa\\\\Secret42'}", ["pa\\\\Secret42", "Secret42"]),
]


@pytest.mark.parametrize("url, message, forms", LEAKS, ids=[leak[1][:40] for leak in LEAKS])
def test_every_form_of_the_password_is_hidden(url: str, message: str, forms: list[str]) -> None:
    assert any(form in message for form in forms)  # the case does leak without scrub
    scrubbed = scrub(message, url)
    for form in forms:
        assert form not in scrubbed, scrubbed
    assert "***" in scrubbed


def test_mask_alone_lets_the_cut_password_through() -> None:
    """Why ``scrub`` exists: the piece after the @ is no URL, so ``mask`` cannot see it."""
    assert "Secret42" in mask("failed to resolve host 'Secret42@127.0.0.1'")


def test_what_is_not_the_password_is_left_alone() -> None:
    url = "postgresql://user:ab@Secret42@127.0.0.1:9/db"
    text = "connection to 127.0.0.1 port 9 refused: check the host and the table 'abc'"
    assert scrub(text, url) == text  # "ab", a piece under 4 characters, stays in 'abc'
    assert scrub(text) == text
    for path_like in ("sqlite:////tmp/a:b@c/study.db", "journal:///tmp/x/journal.log"):
        assert scrub("a:b@c no secret here", path_like) == "a:b@c no secret here"


def test_a_url_in_the_message_is_masked_as_before() -> None:
    url = "postgresql://user:pa@Secret42@127.0.0.1:9/db"
    assert scrub(f"--storage {url}: refused", url) == \
        "--storage postgresql://user:***@127.0.0.1:9/db: refused"


def test_open_storage_names_the_cause_without_the_password() -> None:
    url = "postgresql://u:pa@Secret42@127.0.0.1:9/x"  # port 9: nothing listens; no server needed
    with pytest.raises(ConfigError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert "cannot open the storage" in message and "Secret42" not in message, message
    assert url in storages_opened()  # remembered before the driver spoke


def test_a_bugs_traceback_is_printed_scrubbed(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tlsweep.cli._app import print_scrubbed_traceback

    monkeypatch.setattr(secrets, "_OPENED", ["postgresql://u:pa@Secret42@db:5432/x"])
    try:
        raise RuntimeError("could not translate host name 'Secret42@db'")
    except RuntimeError:
        print_scrubbed_traceback()
    printed = capsys.readouterr().err
    assert printed.startswith("Traceback") and "RuntimeError" in printed
    assert "Secret42" not in printed, printed
