"""Thin aiohttp handlers over the services, one module per capability (registered on `openapi.api`)."""
