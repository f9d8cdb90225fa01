"""The HTTP tracking collector: pixel, JSON beacon, identify, webhooks, the snippet."""

from producers.collector.app import create_app
from producers.collector.http import ANON_COOKIE, PIXEL_GIF
from producers.collector.signing import sign

__all__ = ["ANON_COOKIE", "PIXEL_GIF", "create_app", "sign"]
