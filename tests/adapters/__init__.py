"""The adapters: WSGI, ASGI, Django, Channels, identify helpers, testing helpers."""
