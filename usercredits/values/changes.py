"""What a change stream reader hands on besides ledger entries and orders."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Touched:
    """A write to a collection whose contents a reader keeps (webhook endpoints, alert
    rules): they changed at this point of the stream."""

    collection: str
