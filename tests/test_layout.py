"""The architecture's import rules: the command line sits above every part, the agent below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("agent", "collector", "workers", "ui", "cli")
# what each part may import of ours (besides itself)
ALLOWED = {
    "agent": set(),
    "collector": {"agent"},
    "workers": {"agent", "collector"},
    "ui": {"agent", "collector", "workers"},
    "cli": {"agent", "collector", "workers", "ui"},
}


def imported_parts(path: Path) -> set[str]:
    """The aquarium.<part> names a module imports, anywhere in it (lazy imports count too)."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "aquarium" and len(pieces) > 1:
                parts.add(pieces[1])
            elif pieces[0] in PARTS:
                parts.add(f"bare {pieces[0]}")  # `import agent`: never, code imports aquarium.*
    return parts


@pytest.mark.parametrize("part", PARTS)
def test_a_part_imports_only_what_the_architecture_allows(part: str) -> None:
    offences = []
    for path in sorted((REPO / part).rglob("*.py")):
        bad = imported_parts(path) - ALLOWED[part] - {part}
        if bad:
            offences.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offences, "\n".join(offences)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from aquarium.cli import main\n    import agent\n")
    assert imported_parts(module) == {"cli", "bare agent"}
