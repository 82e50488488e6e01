"""The store (sms2fa_middleware.store): SQLite file and PostgreSQL."""
