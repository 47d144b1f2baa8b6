"""What PyPI and pip read of the project: the Apache-2.0 licence, whole, declared by its SPDX
expression; the project's URLs and classifiers; and the extras: each optional feature's
packages out of the base install, every one of them pulled in by ``.[test]`` so that CI
(``pip install -e ".[test]"``) tests every feature, and every requirement with a lower bound."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
META = PROJECT["project"]
EXTRAS: dict[str, list[str]] = META["optional-dependencies"]
# The packages each optional feature needs, out of the base install.
OPTIONAL = {
    "tuner": {"keras-tuner", "tensorboard"},
    "postgres": {"psycopg"},
    "tracking": {"mlflow-skinny"},
    "export": {"tf2onnx", "onnx", "onnxruntime", "ai-edge-litert"},
}


def name_of(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def reached(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The packages ``pip install 'tlsweep[extra]'`` asks for, self-references followed."""
    found: set[str] = set()
    for requirement in EXTRAS[extra]:
        own = re.fullmatch(r"tlsweep\[([\w,\s-]+)\]", requirement.split(";")[0].strip())
        if own is None:
            found.add(name_of(requirement))
            continue
        for inner in (e.strip() for e in own.group(1).split(",")):
            assert inner in EXTRAS, f"tlsweep[{inner}] names no extra"
            if inner not in seen:
                found |= reached(inner, seen | {extra})
    return found


def test_the_licence_is_apache_2_whole_and_declared_by_spdx() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    for landmark in ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
                     "9. Accepting Warranty or Additional Liability.",
                     "END OF TERMS AND CONDITIONS", "APPENDIX: How to apply the Apache License"):
        assert landmark in text, landmark
    assert META["license"] == "Apache-2.0" and META["license-files"] == ["LICENSE"]
    # PEP 639: with a licence expression, a "License ::" classifier is an error to build tools.
    assert not [c for c in META["classifiers"] if c.startswith("License ::")]
    setuptools = [r for r in PROJECT["build-system"]["requires"] if name_of(r) == "setuptools"]
    assert setuptools == ["setuptools>=77"]  # the first to read `license-files`


def test_urls_classifiers_and_keywords() -> None:
    assert set(META["urls"]) == {"Homepage", "Documentation", "Issues", "Source"}
    assert all(url.startswith("https://github.com/tlsweep/tlsweep") for url in
               META["urls"].values())
    classifiers = set(META["classifiers"])
    assert {"Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12",
            "Operating System :: POSIX :: Linux", "Operating System :: MacOS",
            "Development Status :: 3 - Alpha",
            "Topic :: Scientific/Engineering :: Artificial Intelligence"} <= classifiers
    assert META["requires-python"] == ">=3.11" and "transfer-learning" in META["keywords"]


def test_each_optional_feature_is_an_extra_and_out_of_the_base_install() -> None:
    base = {name_of(r) for r in META["dependencies"]}
    for extra, packages in OPTIONAL.items():
        assert packages <= reached(extra), extra
        assert not packages & base, f"{extra}'s packages are in every install"
    assert reached("all") == set().union(*OPTIONAL.values())


def test_the_test_extra_pulls_in_every_optional_feature() -> None:
    """CI installs `.[test]` only: a feature whose packages it lacked would go untested."""
    every = set().union(*(reached(extra) for extra in EXTRAS if extra != "test"))
    assert every <= reached("test")


def test_every_requirement_has_a_lower_bound() -> None:
    requirements = META["dependencies"] + [r for rs in EXTRAS.values() for r in rs]
    loose = [r for r in requirements if not r.startswith("tlsweep[") and ">=" not in r]
    assert not loose, f"no lower bound: {loose}"
