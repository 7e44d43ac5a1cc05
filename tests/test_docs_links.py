"""README.md and docs/ link only to files inside the repository, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "deploy" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`((?:\.\./|/)[^`\s]+)`")  # `../x.md` or `/abs/path` written as a reference


def local_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+://|mailto:|#", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve_inside_the_repository(page: Path) -> None:
    assert page.exists()
    for target in local_links(page):
        resolved = (page.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{page.name} links outside the repository: {target}"
        assert resolved.exists(), f"{page.name} links to a missing file: {target}"
    outside = [p for p in CODE_PATH.findall(page.read_text()) if p.startswith("../") and page == REPO / "README.md"]
    assert not outside, f"{page.name} refers to files outside the repository: {outside}"


def test_the_readme_links_the_architecture_and_the_trust_model() -> None:
    assert {"docs/architecture.md", "docs/trust.md"} <= set(local_links(REPO / "README.md"))
