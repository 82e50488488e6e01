"""The challenge flows: the HTML page for browsers (:mod:`.html`), JSON for API clients
(:mod:`.json`)."""
