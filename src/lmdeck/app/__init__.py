"""The top of the server: the app factory, the gateway assembly, the HTTP routes and middleware.

It imports every feature package and is imported by nothing but ``cli`` and ``testing``.
"""
