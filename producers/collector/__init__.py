"""The HTTP tracking collector: pixel, JSON beacon, identify, webhooks, the snippet."""

from producers.collector.app import ANON_COOKIE, PIXEL_GIF, create_app, sign

__all__ = ["ANON_COOKIE", "PIXEL_GIF", "create_app", "sign"]
