"""Thin routes: parse, delegate to a serving class, serialize."""
