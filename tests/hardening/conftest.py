"""Fixtures for the hardening suite (issue 16's defects, fuzzers, the access matrix): a real redis-server per test."""
from redis_server import redis_server  # noqa: F401
