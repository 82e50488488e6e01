"""The engine (sms2fa_middleware.engine): the Verifier and its twins."""
