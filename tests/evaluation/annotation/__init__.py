"""Annotation queue tests."""
