"""`aquarium doctor`: is this installation able to move points from agents to the store?

Each check says what it found. A failed check (✗) makes the exit code 1; a warning (!) is
worth reading but does not: spooled files waiting, or entries no collector has read yet.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import redis
from rich.markup import escape
from rich.table import Table

from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.spool import is_locked, spool_files

from . import redis_roles
from .activity import Activity, active_collectors
from .data_dir import unwritable_reason
from .options import console, data_dir_option, plural, print_table, redis_options
from .redis_probe import connect

MIN_REDIS = (6, 2)  # XPENDING IDLE and XCLAIM as the collector uses them to reclaim a dead collector's entries


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: a warning, shown but not failing
    detail: str

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "!"}[self.ok]


def run_checks(redis_url: str, data_dir: Path, prefix: str, role: str | None = None) -> list[Check]:
    return [*redis_checks(redis_url, RedisKeys(prefix), role), *data_checks(data_dir)]


def redis_checks(url: str, keys: RedisKeys, role: str | None = None) -> list[Check]:
    try:
        client = connect(url)
    except ValueError as e:
        return [Check("redis", False, f"{url}: {e}")]
    try:
        try:
            info: dict[str, Any] = client.info()
        except redis.RedisError as e:
            return [
                Check(
                    "redis",
                    False,
                    f"cannot reach {url} ({type(e).__name__}: {e}); start one with "
                    "`aquarium up` or set AQUARIUM_REDIS_URL / --redis-url",
                )
            ]
        checks = [Check("redis", True, f"{url} answers"), _version(info), _eviction(info), _acl(client, keys, role)]
        return [*checks, _stream(client, keys)]
    finally:
        client.close()


def _version(info: dict[str, Any]) -> Check:
    raw = str(info.get("redis_version", "0"))
    parts = tuple(int(p) for p in raw.split(".")[:2] if p.isdigit())
    if parts >= MIN_REDIS:
        return Check("redis version", True, raw)
    return Check("redis version", False, f"{raw}: 6.2 or newer is needed (to reclaim a dead collector's batches)")


def _eviction(info: dict[str, Any]) -> Check:
    # INFO works where CONFIG GET is disabled (managed Redis)
    policy = info.get("maxmemory_policy")
    if policy is None:
        return Check("maxmemory-policy", None, "not reported by this server; it must be noeviction")
    if policy == "noeviction":
        return Check("maxmemory-policy", True, "noeviction")
    return Check(
        "maxmemory-policy",
        False,
        f"{policy}: Redis may evict batches no collector has stored yet; set `maxmemory-policy noeviction`",
    )


def _acl(client: redis.Redis, keys: RedisKeys, role: str | None) -> Check:
    """Which ACL user this is, and whether it may run what its role needs (ACL DRYRUN runs nothing)."""
    try:
        user = str(redis_roles.whoami(client))
    except redis.ResponseError as e:
        return Check("acl user", None, f"ACL WHOAMI refused ({e}); cannot tell what this user may do")
    roles = [role] if role else [r] if (r := redis_roles.role_of(user)) else list(redis_roles.ROLES)
    problems, unchecked = [], ""
    for each in roles:
        report = redis_roles.check(client, each, keys)
        problems += [f"{each}: {denied}" for denied in report.denied]
        unchecked = unchecked or report.note
    as_roles = f"{user}, as {' / '.join(roles)}"
    if problems:
        return Check("acl user", False, f"{as_roles}: may not run " + "; ".join(problems))
    if unchecked:
        return Check("acl user", None, f"{as_roles}: {unchecked}; see deploy/redis/users.acl")
    return Check("acl user", True, f"{as_roles}: may run every command the role needs")


def _stream(client: redis.Redis, keys: RedisKeys) -> Check:
    try:
        length = int(client.xlen(keys.stream))
        dead = int(client.xlen(keys.dead_letter))
        try:
            groups = client.xinfo_groups(keys.stream)
        except redis.ResponseError:
            groups = []
    except redis.exceptions.NoPermissionError as e:  # an agent's user may write the stream, not inspect it
        return Check("stream", None, f"{keys.stream}: this user may not inspect it ({e})")
    except redis.RedisError as e:
        return Check("stream", False, f"{keys.stream}: {type(e).__name__}: {e}")
    group = next((g for g in groups if _text(g["name"]) == keys.group), None)
    dead_note = f"; {plural(dead, 'dead letter')} in {keys.dead_letter}" if dead else ""
    if group is None:
        ok = None if length else True
        entries = plural(length, "entry", "entries")
        return Check("stream", ok, f"{keys.stream}: {entries}, no collector has connected yet{dead_note}")
    lag = group.get("lag")
    activity = active_collectors(client, keys)
    detail = (
        f"{keys.stream}: {plural(length, 'entry', 'entries')}, {group['pending']} pending"
        + (f", {lag} unread" if lag is not None else "")
        + f"; {_describe(activity, int(group['consumers']))}{dead_note}"
    )
    return Check("stream", None if dead or (length and not activity) else True, detail)


def _describe(activity: Activity, consumers: int) -> str:
    in_group = f"{plural(consumers, 'consumer')} in the group"
    if activity.names is None:
        return f"{in_group}; whether they run is unknown (Redis < 7.2 and this user may not run CLIENT LIST)"
    where = "" if activity.per_group else " (connections reading as collectors on this Redis)"
    return f"{plural(len(activity.names), 'active collector')}{where}, {in_group}"


def data_checks(data_dir: Path) -> list[Check]:
    writable = _writable(data_dir)
    checks = [writable]
    if writable.ok:
        checks.append(_store(data_dir))
    checks.append(_spool(data_dir / "spool"))
    return checks


def _writable(data_dir: Path) -> Check:
    why = unwritable_reason(data_dir)
    if why is not None:
        return Check("data dir", False, f"{data_dir.resolve()}: {why}")
    return Check(
        "data dir", True, f"{data_dir.resolve()} " + ("is writable" if data_dir.exists() else "will be created")
    )


def _store(data_dir: Path) -> Check:
    """Open (creating and migrating) the store; a data dir not created yet is tried in a temp dir."""
    from aquarium.collector import Store

    db = data_dir / "aquarium.db"
    try:
        if data_dir.exists():
            with Store(data_dir) as store:
                runs = len(store.list_runs())
            return Check("store", True, f"{db} opens and is migrated; {plural(runs, 'run')}")
        with tempfile.TemporaryDirectory() as tmp, Store(tmp):
            pass
        return Check("store", True, f"{db} does not exist yet; a new store opens and migrates")
    except Exception as e:  # any failure to open or migrate is what this check reports
        return Check("store", False, f"{db} does not open: {type(e).__name__}: {e}")


def _spool(spool_dir: Path) -> Check:
    files = spool_files(spool_dir)
    if not files:
        return Check("spool", True, f"{spool_dir}: nothing waiting")
    live = sum(1 for f in files if is_locked(f))
    waiting = len(files) - live
    size = sum(f.stat().st_size for f in files if f.exists())
    detail = f"{spool_dir}: {plural(len(files), 'file')} ({size / 1024:.0f} KiB)"
    if live:
        detail += f", {live} still written by running agents"
    if waiting:
        detail += f"; {waiting} waiting: `aquarium sync` or `aquarium up` ingests them"
    return Check("spool", None if waiting else True, detail)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@click.command("doctor")
@redis_options()
@data_dir_option
@click.option(
    "--role",
    type=click.Choice(redis_roles.ROLES),
    default=None,
    help="Check the Redis user's permissions for this role (default: from the user name "
    "aquarium-ROLE, else every role).",
)
def doctor_command(redis_url: str, prefix: str, data_dir: Path, role: str | None) -> None:
    """Check the installation; exit code 0 if every check passes, else 1.

    Redis reachable and >= 6.2, maxmemory-policy noeviction, the ACL user and
    whether it may run what its role needs (ACL WHOAMI, ACL DRYRUN), the data dir
    writable, the SQLite store opening and migrating, spooled files waiting, and the stream's
    length, pending entries and collectors.
    """
    checks = run_checks(redis_url, data_dir, prefix, role)
    table = Table("", "check", "details", title="aquarium doctor", title_justify="left")
    table.columns[1].no_wrap = True
    colors = {True: "green", False: "red", None: "yellow"}
    for check in checks:
        color = colors[check.ok]
        table.add_row(f"[{color}]{check.mark}[/{color}]", check.name, escape(check.detail))
    print_table(console(), table)
    if any(check.ok is False for check in checks):
        raise SystemExit(1)
