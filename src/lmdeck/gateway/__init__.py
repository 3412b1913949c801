"""The gateway core: routing, dispatch to providers, stream handling and the ``/v1`` serving path."""
