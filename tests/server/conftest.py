"""Fixtures for the server tests: `redis_server`, a real redis-server per test (tests/redis_server.py)."""
from redis_server import redis_server  # noqa: F401
from redis_cluster import redis_cluster, redis_cluster_with_replicas  # noqa: F401
