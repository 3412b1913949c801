"""The in-process gateway of the evaluation tests (tests/ is on sys.path, so its packages import by name)."""

from evaluation.conftest import make_settings, start_deck

__all__ = ["make_settings", "start_deck"]
