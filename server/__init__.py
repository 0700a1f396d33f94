"""The livecart server: aiohttp app, rooms, auth, storage and the command line."""
