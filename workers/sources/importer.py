"""One import: read a source run, turn it into batches, refuse a changed source, deliver.

The whole run is read and converted before anything is sent, so a source that fails to read
(a corrupt event file, a missing metadata.json) stores nothing. Before sending, the store is
asked (through ``Api``, when one is given and reachable) whether the run is already there with
other content: the batch ids of an import never change, so sending changed content under them
would be refused batch by batch as conflicts; the import fails instead, saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aquarium.agent.errors import AquariumError, RunNotFoundError

from ..progress import Progress
from ..report import Report
from . import get_source
from .base import SourceError
from .convert import content_digest, to_batches
from .delivery import Delivery

log = logging.getLogger("aquarium.workers.sources.importer")


def stored_digest(api_target: str, run_id: str) -> str | None:
    """The digest of ``run_id`` as stored, None if it is not stored (or the store cannot be read)."""
    from aquarium.collector import Api

    try:
        with Api(api_target) as api:
            return content_digest(api.run(run_id)) or ""
    except RunNotFoundError:
        return None
    except (AquariumError, OSError) as e:  # no store yet, an API that does not answer: nothing to compare
        log.info("cannot check %s for an earlier import of %s: %s", api_target, run_id, e)
        return None


def run_import(
    source_name: str,
    location: str,
    ref: str,
    options: Mapping[str, Any],
    delivery: Delivery,
    progress: Progress,
    api_target: str | None = None,
) -> dict[str, Any]:
    """Import run ``ref`` of ``location``; the kept/not-kept report (as a dict)."""
    source = get_source(source_name)
    report = Report("aquarium", ref)
    progress(0, 0, "reading")
    run = source.read_run(location, ref, options, report, progress)
    run_id = run.run_id
    batches, digest = to_batches(run, report)
    if api_target is not None:
        stored = stored_digest(api_target, run_id)
        if stored is not None and stored != digest:
            raise SourceError(
                f"{ref} changed since it was imported as run {run_id} (or that run was not an import of it): "
                "the imported run is left as it is"
            )
    outcome = delivery.deliver(run_id, batches, progress)
    report.destination = run_id
    result = report.to_dict()
    result.update({"source": source_name, "source_run": ref, "location": location, "run": run_id,
                   "batches": len(batches), "delivery": outcome, "digest": digest})  # fmt: skip
    log.info("imported %s %s as %s (%d batches, %s)", source_name, ref, run_id, len(batches), outcome)
    return result
