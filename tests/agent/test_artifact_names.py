"""Artifact names are checked at the call: whatever passes is a safe relative path everywhere."""

from __future__ import annotations

import pytest

from aquarium.agent.artifact_names import artifact_name_problem, validate_artifact_name
from aquarium.agent.errors import InvalidNameError


@pytest.mark.parametrize("name", ["model.pt", "plots/loss curve.png", "a/b/c.json", "<img src=x>.png", "名前.txt"])
def test_safe_names_pass_unchanged(name: str) -> None:
    assert validate_artifact_name(name) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("../secret", "'..'"),
        ("a/../../b", "'..'"),
        ("./a", "'.'"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows", "absolute"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("", "empty"),
        ("a//b", "empty"),
        ("CON", "reserved"),
        ("dir/lpt1.txt", "reserved"),
        ("trailing.", "dot"),
        ("x" * 251, "limit"),
        ("\ud800", "UTF-8"),
        (7, "str"),
    ],
)
def test_unsafe_names_raise_with_the_reason(name: object, why: str) -> None:
    assert why in (artifact_name_problem(name) or "")
    with pytest.raises(InvalidNameError, match="artifact name"):
        validate_artifact_name(name)
