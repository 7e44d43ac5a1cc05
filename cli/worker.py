"""`aquarium worker`: an RQ worker on the export queue."""

from __future__ import annotations

import click

from .options import redis_options, say


@click.command("worker")
@redis_options()
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit (in-process, no fork).")
@click.option(
    "--fork/--no-fork", default=True, show_default=True, help="Run each job in a forked child (not in --burst)."
)
def worker(redis_url: str, prefix: str, burst: bool, fork: bool) -> None:
    """Run export jobs from the `aquarium-exports` queue (what `aquarium export` enqueues).

    Scheduled retries are moved back to the queue by the worker's scheduler.
    """
    import redis
    from rq import SimpleWorker, Worker

    from aquarium.workers import export_queue

    connection = redis.Redis.from_url(redis_url)
    queue = export_queue(connection)
    kind = SimpleWorker if burst or not fork else Worker
    say(f"{kind.__name__} on {queue.name} at {redis_url}{' (burst)' if burst else ''}")
    kind([queue], connection=connection).work(burst=burst, with_scheduler=not burst)
