"""Routing: which target serves a request, and what happens when it fails."""
