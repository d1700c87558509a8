"""Webhooks: a station's final decisions pushed to its URL, signed, retried, resent."""
