"""A run's artifacts in W&B: files as a ``wandb.Artifact``, models each their own, figures as images.

- Bytes: downloaded once into ``<dir>/wandb/aquarium-artifacts/<wandb id>/<sha256>`` and added
  to the artifacts with ``policy="immutable"`` (W&B references the file instead of copying it
  to its staging dir outside the run), so an offline run's manifest points at files that stay
  until ``wandb sync`` uploads them; a re-export downloads only bytes not already there, and
  files no export of the run refers to any more are removed once the new run dir is in place.
- Files and figures: one artifact ``<wandb id>-files`` of type ``file``, each at its name.
- Models: an artifact ``<wandb id>-<name>`` of type ``model`` each, the framework in its metadata.
- Raster images (PNG, JPEG, GIF) also as ``wandb.Image`` in the history at their step (merged
  into the step's row; logged without a step: at step 0).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report import Report
from .artifacts import Planned, fetched

if TYPE_CHECKING:
    from aquarium.collector import Api

CONTENT_DIR = "aquarium-artifacts"
MAX_ARTIFACT_NAME = 128  # W&B's limit; no "/" (and ":" would read as a version)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def artifact_name(wid: str, suffix: str) -> str:
    name = _UNSAFE.sub("-", f"{wid}-{suffix}")
    if len(name) <= MAX_ARTIFACT_NAME:
        return name
    digest = hashlib.sha256(suffix.encode()).hexdigest()[:12]
    return f"{name[: MAX_ARTIFACT_NAME - 13]}-{digest}"


@dataclass
class Local:
    """One planned artifact and where its bytes are on disk."""

    artifact: Planned
    path: Path


class WandbArtifacts:
    """The artifacts of one W&B run: fetched before ``wandb.init``, logged before ``finish``."""

    def __init__(self, api: Api, run_id: str, wandb_dir: Path, wid: str, planned: list[Planned]) -> None:
        self.content = wandb_dir / CONTENT_DIR / wid
        self.wid = wid
        self.local: list[Local] = []
        if not planned:
            return
        self.content.mkdir(parents=True, exist_ok=True)
        for artifact in planned:
            path = self.content / artifact.sha256
            if not path.is_file():  # a re-export: bytes already there are not downloaded again
                with fetched(api, run_id, artifact, self.content) as temp:
                    os.replace(temp, path)
            self.local.append(Local(artifact, path))

    def images(self, report: Report) -> Iterator[tuple[int, str, Any]]:
        """(step, history key, wandb.Image) of every raster image, by step."""
        import wandb

        for item in sorted((i for i in self.local if i.artifact.raster), key=lambda i: i.artifact.step or 0):
            step = item.artifact.step if item.artifact.step is not None else 0
            if step < 0:
                report.note("artifacts", "negative step", "W&B steps start at 0: not in the history (the file is "
                            "in the files artifact)", example=item.artifact.name)  # fmt: skip
                continue
            if item.artifact.step is None:
                report.note("artifacts", "no step", "an image logged without a step: at step 0",
                            example=item.artifact.name)  # fmt: skip
            report.note("artifacts", "image", "raster images also as wandb.Image in the history at their step",
                        example=item.artifact.name)  # fmt: skip
            yield step, item.artifact.name, wandb.Image(str(item.path))

    def log(self, wb: Any, report: Report) -> None:
        """The files artifact and one artifact per model, logged with the run."""
        import wandb

        files = [i for i in self.local if i.artifact.kind != "model"]
        if files:
            bundle = wandb.Artifact(artifact_name(self.wid, "files"), type="file",
                                    metadata={"aquarium_run": self.wid, "files": len(files)})  # fmt: skip
            for item in files:
                bundle.add_file(str(item.path), name=item.artifact.name, policy="immutable")
            wb.log_artifact(bundle)
            report.note("artifacts", "files", f"files and figures in the W&B artifact {bundle.name} (type file), "
                        "each at its name", len(files))  # fmt: skip
        for item in self.local:
            a = item.artifact
            if a.kind != "model":
                continue
            model = wandb.Artifact(artifact_name(self.wid, a.name), type="model",
                                   metadata={"framework": a.framework, "name": a.name, "sha256": a.sha256,
                                             "step": a.step, **a.meta})  # fmt: skip
            model.add_file(str(item.path), name=a.name, policy="immutable")
            wb.log_artifact(model)
            report.note("artifacts", "model", "models as W&B artifacts of type model, the framework in metadata",
                        example=f"{a.name} -> {model.name}")  # fmt: skip
        report.keep("artifacts", len(self.local))

    def prune(self) -> None:
        """Once the export is in place: remove bytes no artifact of this export refers to."""
        if not self.content.is_dir():
            return
        wanted = {item.path.name for item in self.local}
        for path in self.content.iterdir():
            if path.name not in wanted:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
