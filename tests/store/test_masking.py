"""Passwords never appear in what tlsweep prints: one masking function, over generated URLs and
libpq strings with awkward characters in every place a password can go. No TensorFlow."""

from __future__ import annotations

import random
import string

import pytest

from tlsweep.store import mask

AWKWARD = "@:/%?&=#+!$*"
SCHEMES = ["postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgres",
           "mysql+pymysql", "cockroachdb"]


def password(rng: random.Random) -> str:
    """At least one awkward character, and a marker that cannot occur by chance elsewhere."""
    body = "".join(rng.choice(string.ascii_letters + string.digits + AWKWARD)
                   for _ in range(rng.randint(4, 16)))
    return "Zq9" + rng.choice(AWKWARD) + body


def user(rng: random.Random) -> str:
    return rng.choice(["tlsweep", "ann", "svc_account", "u"])


def shapes(rng: random.Random, secret: str) -> list[str]:
    host = rng.choice(["db.internal", "127.0.0.1", "[::1]", "db.example.org"])
    port = rng.choice(["", ":5432", ":6543"])
    scheme = rng.choice(SCHEMES)
    encoded = secret.replace("%", "%25").replace("@", "%40").replace(":", "%3A")\
        .replace("/", "%2F").replace("?", "%3F").replace("&", "%26").replace("#", "%23")
    return [
        f"{scheme}://{user(rng)}:{secret}@{host}{port}/tlsweep",
        f"{scheme}://{user(rng)}:{encoded}@{host}{port}/tlsweep?sslmode=require",
        f"{scheme}://{user(rng)}@{host}{port}/tlsweep?password={encoded}",
        f"{scheme}:///tlsweep?host={host}&password={encoded}&sslmode=require",
        f"host={host} port=5432 user={user(rng)} password={encoded} dbname=tlsweep",
        f"host={host} user={user(rng)} password='{secret.replace(chr(39), '')}' dbname=x",
    ]


def in_messages(url: str) -> list[str]:
    """How a URL turns up in output: alone, inside an error, quoted, in parentheses, twice."""
    return [url, f"cannot open the storage {url}: connection refused",
            f"--storage '{url}' failed", f"(OperationalError: {url})", f"{url} and {url}."]


@pytest.mark.parametrize("seed", range(40))
def test_no_generated_password_survives_masking(seed: int) -> None:
    rng = random.Random(seed)
    secret = password(rng)
    for url in shapes(rng, secret):
        for text in in_messages(url):
            masked = mask(text)
            encoded = secret.replace("%", "%25").replace("@", "%40").replace(":", "%3A")
            for form in {secret, encoded, secret.replace("'", "")}:
                assert form not in masked, (text, masked)
            assert "***" in masked


def test_what_is_not_a_secret_is_left_alone() -> None:
    for text in ("sqlite:///results/a/study.db", "journal:///tmp/x/journal.log",
                 "postgresql://tlsweep@db.internal/tlsweep", "no url at all"):
        assert mask(text) == text
    assert mask("postgresql://ann:s3cr%40t@db.example:5432/x") == \
        "postgresql://ann:***@db.example:5432/x"
