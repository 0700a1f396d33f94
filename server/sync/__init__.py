"""The sync core: cart rooms over y-websocket (`connection`, `socket`, `room`, `presence`, `registry`)."""
