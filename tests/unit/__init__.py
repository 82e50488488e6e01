"""Pure tests: no server, no database beyond a SQLite file, no network."""
