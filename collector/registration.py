"""One Redis prefix feeds one store.

Collectors share a consumer group, so two collectors writing into different stores would each
get part of every run. A collector therefore registers its store's id under the prefix before it
reads, renews it in its maintenance, and refuses to start when another store holds the prefix.
The registration expires ``ttl`` seconds after the last collector of that store stopped renewing
it (a crash), and is released at a clean stop, so a store that moved on frees the prefix.
"""

from __future__ import annotations

import socket
from pathlib import Path

import redis

from aquarium.agent import env
from aquarium.agent.errors import AquariumError
from aquarium.agent.redis_keys import RedisKeys

# compare-and-set / compare-and-delete on the id in front of "id host:path"
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ' ' then return current end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then redis.call('DEL', KEYS[1]) end
return 0
"""


class StoreConflictError(AquariumError):
    """Raised when a collector's store differs from the one already consuming its Redis prefix."""

    def __init__(self, prefix: str, redis_at: str, other: str, mine: str, ttl: float) -> None:
        self.prefix, self.other, self.mine = prefix, other, mine
        other_id, _, other_where = other.partition(" ")
        mine_id, _, mine_where = mine.partition(" ")
        super().__init__(
            f"Redis prefix {prefix!r} at {redis_at} already feeds another store: {other_where} (store {other_id}); "
            f"this collector's store is {mine_where} (store {mine_id}). One prefix feeds one store, or runs would be "
            "split between them. To run both, give this one its own Redis (`aquarium up --port PORT`) or its own "
            f"prefix (`--prefix NAME`, and {env.STREAM_PREFIX.name}=NAME for its training scripts). If the other "
            f"collector is gone for good, its registration expires within {ttl:.0f}s."
        )


class StoreRegistration:
    """This collector's claim on its prefix for its store."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, store_id: str, data_dir: Path, ttl: float) -> None:
        self.client, self.keys, self.store_id, self.ttl = client, keys, store_id, ttl
        self.value = f"{store_id} {socket.gethostname()}:{data_dir.resolve()}"

    def claim(self) -> None:
        """Register (or renew) this store under the prefix; raises StoreConflictError if another holds it."""
        other = self.client.eval(_CLAIM, 1, self.keys.store, self.store_id, self.value, int(self.ttl * 1000))
        if other:
            text = other.decode() if isinstance(other, bytes) else str(other)
            raise StoreConflictError(self.keys.prefix, _where(self.client), text, self.value, self.ttl)

    def release(self) -> None:
        """Free the prefix at a clean stop (a sibling of the same store renews it at its next maintenance)."""
        self.client.eval(_RELEASE, 1, self.keys.store, self.store_id)


def _where(client: redis.Redis) -> str:
    """host:port/db of the server, without the credentials a URL may carry."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
