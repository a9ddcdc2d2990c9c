"""Ids made of a user id and a name in that user's namespace."""


def user_scoped(user_id: str, name: str) -> str:
    """`name` in the user's namespace as one string: the user id's length first, so that no
    two (user, name) pairs give the same string whatever characters they contain."""
    return f"{len(user_id)}:{user_id}:{name}"
