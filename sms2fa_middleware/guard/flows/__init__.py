"""The challenge flows: the HTML page for browsers (:mod:`.html`)."""
