"""What can go wrong talking to a Sealog server."""


class SealogError(Exception):
    """Base of the client's errors."""


class Unavailable(SealogError):
    """emit_durable: the server did not take the event (it was not spooled)."""


class Rejected(SealogError):
    """The server answered that it will never take this event."""

    def __init__(self, code, message):
        super().__init__(f"the server refused the event ({code}): {message}")
        self.code = code
        self.message = message


class Closed(SealogError):
    """The emitter is closed."""


class VerificationError(SealogError):
    """A signature, proof or record did not check."""


class InconsistentLog(VerificationError):
    """The log the server shows is not an extension of the one verified before."""
