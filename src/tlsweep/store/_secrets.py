"""No password in anything tlsweep prints.

``mask`` hides the password of every URL and libpq keyword string a text holds. That is not
enough for a driver's own words: a password with an unencoded ``@``
(``postgresql://u:pa@Secret42@host/db``) is cut by the URL parser, and psycopg then says
``failed to resolve host 'Secret42@host'``, which is no URL. ``scrub`` knows the storage URL,
so it hides the password in every form a message may carry it: as written, percent-decoded,
percent-encoded, and each piece of it cut where a parser cuts (``@``, ``:``, ``/``...).
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

HIDDEN = "***"
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
# libpq's keyword form (host=... password=...) and URL query parameters (?password=...).
_KEYWORD = re.compile(r"(?P<key>\b(?:ssl)?password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&'\"]+)",
                      re.I)
# Where a URL parser or a driver may cut a password, leaving a piece of it in its message.
_CUTS = re.compile(r"[@:/?#&]")
# A piece shorter than this is not hidden on its own: it would hide common words and numbers
# ("pa" in "password"). The whole password is hidden whatever its length.
MIN_PIECE = 4

# Storage URLs this process has opened (``open_storage``): the CLI scrubs what it prints with
# them, wherever the error came from.
_OPENED: list[str] = []


def _mask_url(url: str) -> str:
    """scheme://user:SECRET@host...: the secret runs to the token's last @, since a password
    may hold @, :, /, ? and & unencoded (when a query holds an @ too, more is hidden: safe)."""
    scheme, _, rest = url.partition("://")
    at = rest.rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return url
    user = rest[:at].split(":", 1)[0]
    return f"{scheme}://{user}:{HIDDEN}{rest[at:]}"


def mask(text: str) -> str:
    """``text`` with every password it may carry replaced by ***: in URLs (user:password@),
    in their query (password=), and in libpq's keyword strings (password=...)."""
    text = _URL.sub(lambda m: _mask_url(m.group(0)), text)
    return _KEYWORD.sub(lambda m: m.group("key") + HIDDEN, text)


def _unquoted(value: str) -> str:
    """A keyword value as libpq reads it: 'it\\'s' is it's."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def passwords_in(url: str) -> list[str]:
    """The passwords ``url`` holds, as written: its user-info's (to the last @, as ``mask``
    reads it), its query's ``password=`` and libpq's keyword ``password=...``."""
    found = [_unquoted(m.group("secret")) for m in _KEYWORD.finditer(url)]
    _, separator, rest = url.partition("://")
    at = rest.rfind("@")
    # Not sqlite:///a:b@c: a path, whose authority (between // and /) is empty.
    if separator and not rest.startswith("/") and at > 0 and ":" in rest[:at]:
        found.append(rest[:at].split(":", 1)[1])
    return [password for password in found if password]


def password_forms(password: str) -> set[str]:
    """Every way a message may spell ``password``: as written, decoded, encoded, as Python's
    repr writes it, and each piece of it of MIN_PIECE characters or more."""
    plain = {password, unquote(password), unquote_plus(password)}
    forms = plain | {quote(p, safe="") for p in plain} | {quote_plus(p) for p in plain}
    forms |= {repr(p)[1:-1] for p in plain}
    forms |= {piece for p in plain for piece in _CUTS.split(p) if len(piece) >= MIN_PIECE}
    return {form for form in forms if form}


def scrub(text: str, *urls: str) -> str:
    """``text`` masked (``mask``), with every form of the passwords of ``urls`` hidden too:
    for messages that carry a driver's or a library's words."""
    text = mask(text)
    forms = {form for url in urls for password in passwords_in(url)
             for form in password_forms(password)}
    for form in sorted(forms, key=len, reverse=True):  # the whole before its pieces
        text = text.replace(form, HIDDEN)
    return text


def remember_storage(url: str) -> None:
    if url not in _OPENED:
        _OPENED.append(url)


def storages_opened() -> tuple[str, ...]:
    """The storage URLs this process has opened, or tried to: ``scrub``'s knowledge for the
    messages the command prints."""
    return tuple(_OPENED)
