"""Whole numbers as the API and the services take them."""

from typing import TypeGuard


def is_whole(value: object) -> TypeGuard[int]:
    """Whether `value` is a whole number: an int, but not a bool, which Python counts as
    one (True would otherwise pass as 1 token)."""
    return isinstance(value, int) and not isinstance(value, bool)
