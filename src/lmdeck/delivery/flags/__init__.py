"""Feature flags: named values evaluated per request, changed live (see :mod:`lmdeck.protocol.flags`)."""
