"""Thin aiohttp routes over the services in server/ (each module registers its routes with `openapi.api`)."""
