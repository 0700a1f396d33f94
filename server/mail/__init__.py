"""E-mail: order mail and mailings over real SMTP, through persisted outboxes (see service.py)."""
