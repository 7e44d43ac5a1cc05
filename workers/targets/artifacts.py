"""Which of a run's artifacts an export sends, under which name, and fetching their bytes.

Every target starts from the same plan, so each reports artifacts the same way:

- Only the latest artifact of a name (per rank) can be downloaded (``Api.download_artifact``),
  so earlier ones of the same name and rank are not kept (noted ``superseded``).
- ``pending`` ones (their bytes never reached the store) are not kept; ``changed`` ones (the
  file changed between the call and its upload) are exported as uploaded, and noted.
- Several ranks logging one name: the same bytes (sha256) are exported once under the name;
  different bytes keep the name for the lowest rank and become ``rank<k>/<name>`` for rank k.
- Bytes are streamed to a temporary file (``download_artifact``: checked against the sha256),
  never held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report import Report

if TYPE_CHECKING:
    from aquarium.collector import Api

RASTER = ("image/png", "image/jpeg", "image/gif")  # what TensorBoard and W&B show as images
TEXT_LIMIT = 1 << 20  # text artifacts up to 1 MiB become text summaries


@dataclass
class Planned:
    """One artifact to export: ``name`` in the target, read from (``source``, ``rank``)."""

    name: str
    source: str
    rank: int
    sha256: str
    size: int
    kind: str
    media_type: str
    framework: str | None
    step: int | None
    logged_at: float
    state: str
    meta: dict[str, Any] = field(default_factory=dict)
    ranks: list[int] = field(default_factory=list)  # every rank that logged these bytes

    @property
    def raster(self) -> bool:
        return self.media_type in RASTER

    @property
    def text(self) -> bool:
        return self.media_type.startswith("text/") and self.size <= TEXT_LIMIT

    def listing(self) -> dict[str, Any]:
        """The metadata written where a target keeps a list (JSON, seed dir, text summaries)."""
        return {
            "name": self.name, "source_name": self.source, "kind": self.kind, "rank": self.rank, "ranks": self.ranks,
            "size": self.size, "sha256": self.sha256, "step": self.step, "framework": self.framework,
            "media_type": self.media_type, "meta": self.meta, "logged_at": self.logged_at, "state": self.state,
        }  # fmt: skip


def plan(api: Api, run_id: str, report: Report) -> list[Planned]:
    """The run's artifacts to export, in logging order, with every loss and mapping noted."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for artifact in api.artifacts(run_id):
        key = (str(artifact["name"]), int(artifact["rank"]))
        if key in latest:
            report.note("artifacts", "superseded", "logged again under the same name and rank: only the latest is "
                        "downloadable, earlier ones are not exported", kept=False, example=key[0])  # fmt: skip
        latest[key] = artifact
    by_name: dict[str, list[dict[str, Any]]] = {}
    for (name, _), artifact in sorted(latest.items(), key=lambda item: (item[1]["logged_at"], item[0])):
        if artifact["state"] == "pending":
            report.note("artifacts", "pending", "its bytes never reached the store (the upload did not complete): "
                        "not exported", kept=False, example=name)  # fmt: skip
            continue
        by_name.setdefault(name, []).append(artifact)
    planned: list[Planned] = []
    for name, group in by_name.items():
        group.sort(key=lambda a: int(a["rank"]))
        seen: dict[str, Planned] = {}
        for artifact in group:
            sha, rank = str(artifact["sha256"]), int(artifact["rank"])
            if sha in seen:
                seen[sha].ranks.append(rank)
                report.note("artifacts", "same bytes", "several ranks logged the same bytes under one name: exported "
                            "once", example=f"{name} (rank {rank})")  # fmt: skip
                continue
            target = name if not seen else f"rank{rank}/{name}"
            if seen:
                report.note("artifacts", "rank", "ranks logged other bytes under one name: rank k's as "
                            "rank<k>/<name>", example=target)  # fmt: skip
            if artifact["state"] == "changed":
                report.note("artifacts", "changed", "the file changed between the call and its upload: exported "
                            "as uploaded", example=name)  # fmt: skip
            seen[sha] = Planned(
                target, name, rank, sha, int(artifact["size"]), str(artifact["kind"]),
                str(artifact.get("media_type") or "application/octet-stream"), artifact.get("framework"),
                artifact.get("step"), float(artifact["logged_at"]), str(artifact["state"]),
                dict(artifact.get("meta") or {}), [rank],
            )  # fmt: skip
            planned.append(seen[sha])
    for p in planned:  # a rank<k>/<name> that another artifact is already called: both kept, distinctly
        if p.name != p.source and sum(q.name == p.name for q in planned) > 1:
            p.name = f"rank{p.rank}-{p.sha256[:8]}/{p.source}"
    return planned


@contextlib.contextmanager
def fetched(api: Api, run_id: str, artifact: Planned, scratch: Path | None = None) -> Iterator[Path]:
    """The artifact's bytes in a temporary file named as the artifact (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix=".aquarium-artifact-", dir=scratch) as temp:
        yield api.download_artifact(run_id, artifact.source, temp, rank=artifact.rank)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
