"""What one request may put into the service: lengths of keys, group names and notes, and
positive token counts. One place for each rule, so every operation refuses the same bad
input the same way, before it changes anything, with a message that shows at most a short
prefix of the bad value (an error must not echo a hostile megabyte back).
"""

from dataclasses import dataclass

from usercredits.services.errors import InvalidInput, shown
from usercredits.values.numbers import is_whole


def check_tokens(tokens: object, what: str = "tokens") -> int:
    """Tokens are a positive int; bool is an int in Python but never a token count."""
    if not is_whole(tokens) or tokens <= 0:
        raise InvalidInput(f"{what} must be a positive whole number, got {shown(tokens)}")
    return tokens


@dataclass(frozen=True, slots=True)
class InputLimits:
    """Length limits of free text; the server builds them from its settings."""

    max_key_length: int = 200
    """Idempotency keys and other client-made keys."""
    max_group_length: int = 200
    """Offer group names, wherever a request names one."""
    max_note_length: int = 500
    """Free-text reasons and notes stored with ledger entries."""

    def key(self, key: object, what: str = "idempotencyKey") -> str:
        if not isinstance(key, str) or not key.strip() or len(key) > self.max_key_length:
            raise InvalidInput(
                f"{what} must be a non-empty string of at most {self.max_key_length} "
                f"characters, got {shown(key)}"
            )
        return key

    def group(self, offer_group: object) -> str:
        if (
            not isinstance(offer_group, str)
            or not offer_group.strip()
            or len(offer_group) > self.max_group_length
        ):
            raise InvalidInput(
                f"offerGroup must be a non-empty name of at most {self.max_group_length} "
                f"characters, got {shown(offer_group)}"
            )
        return offer_group

    def note(self, note: object) -> str | None:
        if note is None:
            return None
        if not isinstance(note, str) or len(note) > self.max_note_length:
            raise InvalidInput(
                f"a reason or note is a string of at most {self.max_note_length} characters, "
                f"got {shown(note)}"
            )
        return note


DEFAULT_INPUT_LIMITS = InputLimits()
