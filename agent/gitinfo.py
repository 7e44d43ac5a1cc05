"""The git commit a run started from, read from .git files directly (no subprocess at init)."""

from __future__ import annotations

from pathlib import Path


def git_info(start: Path | None = None) -> dict[str, str]:
    """``{"commit": sha, "branch": name}`` of the repository containing ``start``, or {}."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_file():  # worktrees and submodules: "gitdir: <path>"
            text = dot_git.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return {}
            dot_git = (folder / text.split(":", 1)[1].strip()).resolve()
        if dot_git.is_dir():
            return _read_head(dot_git)
    return {}


def _read_head(git_dir: Path) -> dict[str, str]:
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return {}
    if not head.startswith("ref:"):
        return {"commit": head}
    ref = head.split(":", 1)[1].strip()
    info = {"branch": ref.removeprefix("refs/heads/")}
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        ref_file = base / ref
        if ref_file.is_file():
            info["commit"] = ref_file.read_text().strip()
            return info
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                info["commit"] = parts[0]
    return info
