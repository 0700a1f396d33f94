"""Thin aiohttp handlers over the services, one module per capability (importing one registers its routes)."""
