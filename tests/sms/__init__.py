"""SMS senders (sms2fa_middleware.sms) and the fake Flowroute (sms2fa_middleware.testing)."""
