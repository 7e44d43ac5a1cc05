"""What each Redis user of Aquarium needs, and asking Redis whether the connected user has it.

`deploy/redis/users.acl` grants these; `aquarium doctor` reports ACL WHOAMI and, on Redis >= 7,
checks each command with ACL DRYRUN (which runs nothing). The commands and keys mirror what the
agent and the collector send (`agent/shipper.py`, `collector/consumer.py`): a change there that
needs a new command shows up here, in the ACL file, and in tests/cli/test_redis_acl.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from aquarium.agent.redis_keys import RedisKeys

ROLES = ("agent", "collector", "ui")


def needs(role: str, keys: RedisKeys) -> list[list[str]]:
    """The commands (with representative keys) a user in ``role`` must be allowed to run."""
    wm = keys.watermarks("any-run")
    if role == "agent":
        return [
            ["XADD", keys.stream, "*", "b", "x"],
            ["HGET", wm, "0/inc"],
            ["HMGET", wm, "0/inc", "0/older-inc"],  # watermarks of orphaned spool segments it adopts
            ["XINFO", "GROUPS", keys.stream],
            ["INFO", "server"],
        ]
    if role == "collector":
        return [
            ["XGROUP", "CREATE", keys.stream, keys.group, "0", "MKSTREAM"],
            ["XREADGROUP", "GROUP", keys.group, "c", "COUNT", "1", "STREAMS", keys.stream, ">"],
            ["XACK", keys.stream, keys.group, "0-1"],
            ["XCLAIM", keys.stream, keys.group, "c", "10000", "0-1"],
            ["XINFO", "CONSUMERS", keys.stream, keys.group],
            ["XPENDING", keys.stream, keys.group],
            ["XINFO", "GROUPS", keys.stream],
            ["XTRIM", keys.stream, "MINID", "0-1"],
            ["XADD", keys.dead_letter, "*", "b", "x"],
            ["HSET", wm, "0/inc", "1"],
            ["EXPIRE", wm, "60"],
            # the Lua scripts that claim the prefix for one store and remove dead consumers
            ["EVAL", "return 1", "1", keys.store],
            ["GET", keys.store],
            ["SET", keys.store, "id host:path", "PX", "30000"],
            ["DEL", keys.store],
            ["XGROUP", "DELCONSUMER", keys.stream, keys.group, "c"],
        ]
    if role == "ui":
        return [["XINFO", "GROUPS", keys.stream], ["XLEN", keys.stream], ["HGET", wm, "0/inc"]]
    raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def role_of(user: str) -> str | None:
    """The role of one of deploy/redis/users.acl's users (aquarium-agent -> agent), else None."""
    name = user.removeprefix("aquarium-")
    return name if name != user and name in ROLES else None


@dataclass(frozen=True)
class AclReport:
    user: str | None  # None: the server has no ACLs (Redis < 6) or would not say
    denied: list[str]  # "XREADGROUP aquarium:batches: NOPERM ..." for each refused need
    checked: bool  # False: ACL DRYRUN is unavailable (Redis < 7, or this user may not run it)
    note: str = ""


def whoami(client: redis.Redis) -> str:
    """The ACL user of this connection; raises ResponseError where ACL WHOAMI is refused."""
    return _text(client.acl_whoami())


def check(client: redis.Redis, role: str, keys: RedisKeys) -> AclReport:
    """Ask ACL DRYRUN whether this connection's user may run each command ``role`` needs."""
    try:
        user = whoami(client)
    except redis.ResponseError as e:
        return AclReport(None, [], False, f"ACL WHOAMI refused ({e})")
    denied: list[str] = []
    for command in needs(role, keys):
        try:
            reply = _text(client.acl_dryrun(user, *command))
        except redis.ResponseError as e:
            return AclReport(user, denied, False, f"ACL DRYRUN unavailable ({e})")
        if reply != "OK":
            denied.append(f"{' '.join(command[:2])}: {reply}")
    return AclReport(user, denied, True)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
