"""The catalogue as code: offers kept in a YAML (or JSON) file, imported by a stable `key`
and exported back. No GraphQL, no HTTP.

A file is a mapping with `offers:`, a list of offers written with the GraphQL input's field
names, prices as a mapping of currency to amount, and bundled items naming other offers by
key:

    offers:
      - key: pro-monthly
        name: Pro
        kind: SUBSCRIPTION
        offerGroup: pro
        tokenCount: 1000
        prices: {USD: "19.99", EUR: "18.99"}
        cycle: MONTHLY
        combinedItems: [{offer: chat-pack, quantity: 2}]

Importing validates the whole file first and reports every problem with its line; only a
valid file changes anything, and importing the same file twice changes nothing the second
time. A dry run reports what would change and writes nothing.
"""

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic.alias_generators import to_camel

from usercredits.services.catalogue.offers import KeyedUpsert, Offers, offer_spec, price
from usercredits.services.errors import InvalidInput, NotFound
from usercredits.services.money import Money
from usercredits.values import CombinedItem, Offer, OfferSpec

STATED = {to_camel(name): field for name, field in OfferSpec.model_fields.items()}
"""An offer's fields as a file names them."""
REQUIRED = ["key", *(name for name, field in STATED.items() if field.is_required())]


@dataclass(frozen=True, slots=True)
class FileOffer:
    """One offer as a catalogue file states it: its key, the line it starts on, its values,
    and the keys of the offers it bundles."""

    key: str
    line: int
    values: dict[str, Any]
    item_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Imported:
    """What importing did with one offer of the file."""

    key: str
    line: int
    action: KeyedUpsert


class CatalogueErrors(InvalidInput):
    """Every problem of a catalogue file, each with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse(text: str) -> list[FileOffer]:
    """The file's offers, with their lines; CatalogueErrors for any malformed part."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise CatalogueErrors([f"line {line}: {exc.problem}"]) from None
    if not isinstance(root, yaml.MappingNode):
        raise CatalogueErrors(["line 1: a catalogue is a mapping with an `offers:` list"])
    offers_node = next((v for k, v in root.value if k.value == "offers"), None)
    if not isinstance(offers_node, yaml.SequenceNode):
        raise CatalogueErrors([f"line {root.start_mark.line + 1}: `offers:` must be a list"])
    problems: list[str] = []
    entries: list[FileOffer] = []
    seen: dict[str, int] = {}
    for node in offers_node.value:
        line = node.start_mark.line + 1
        values = yaml.safe_load(yaml.serialize(node))
        if not isinstance(values, dict):
            problems.append(f"line {line}: each offer is a mapping")
            continue
        missing = [name for name in REQUIRED if name not in values]
        unknown = sorted(set(values) - {"key"} - set(STATED))
        if missing:
            problems.append(f"line {line}: missing {', '.join(missing)}")
        if unknown:
            problems.append(f"line {line}: unknown field(s) {', '.join(unknown)}")
        if missing or unknown:
            continue
        key = str(values["key"])
        if key in seen:
            problems.append(f"line {line}: key {key!r} is already used on line {seen[key]}")
            continue
        seen[key] = line
        items = values.get("combinedItems") or []
        item_keys = [str(i.get("offer")) for i in items if isinstance(i, dict)]
        entries.append(FileOffer(key=key, line=line, values=values, item_keys=item_keys))
    if problems:
        raise CatalogueErrors(problems)
    return _dependencies_first(entries)


def _dependencies_first(entries: list[FileOffer]) -> list[FileOffer]:
    """Orders entries so that bundled offers come before their bundles."""
    by_key = {e.key: e for e in entries}
    ordered: list[FileOffer] = []
    state: dict[str, str] = {}

    def visit(entry: FileOffer) -> None:
        if state.get(entry.key) == "done":
            return
        if state.get(entry.key) == "visiting":
            raise CatalogueErrors(
                [f"line {entry.line}: {entry.key!r} bundles itself through its combined items"]
            )
        state[entry.key] = "visiting"
        for key in entry.item_keys:
            if key in by_key:
                visit(by_key[key])
        state[entry.key] = "done"
        ordered.append(entry)

    for entry in entries:
        visit(entry)
    return ordered


def to_spec(entry: FileOffer, ids: dict[str, str]) -> OfferSpec:
    """The entry as an OfferSpec; `ids` maps offer keys to ids for bundled items."""
    stated = {name: value for name, value in entry.values.items() if name != "key"}
    prices = stated.get("prices")
    if not isinstance(prices, dict):
        raise InvalidInput("prices is a mapping of currency to amount")
    stated["prices"] = [price(str(amount), str(code)) for code, amount in prices.items()]
    items = []
    for item in stated.get("combinedItems") or []:
        if not isinstance(item, dict) or str(item.get("offer")) not in ids:
            raise InvalidInput(f"combined item {item!r} names no known offer key")
        bundled = {name: value for name, value in item.items() if name != "offer"}
        items.append({"quantity": 1, **bundled, "offerId": ids[str(item["offer"])]})
    stated["combinedItems"] = items
    return offer_spec(stated)


async def import_catalogue(*, offers: Offers, text: str, dry_run: bool = False) -> list[Imported]:
    """Upserts every offer of the file by key; the whole file is checked before any write."""
    entries = parse(text)
    planned = await _apply(offers, entries, dry_run=True)
    return planned if dry_run else await _apply(offers, entries, dry_run=False)


async def _apply(offers: Offers, entries: list[FileOffer], *, dry_run: bool) -> list[Imported]:
    ids: dict[str, str] = {}
    # A dry run creates nothing: an offer it would create gets a stand-in id, and bundles
    # of it are checked against the group it would have.
    planned: dict[str, str] = {}
    problems: list[str] = []
    changes: list[Imported] = []
    for entry in entries:
        for key in entry.item_keys:
            if key not in ids:
                existing = await offers.by_key(key)
                if existing is not None:
                    ids[key] = existing.id
        try:
            spec = to_spec(entry, ids)
            action, offer = await offers.upsert_by_key(
                key=entry.key, spec=spec, dry_run=dry_run, planned_groups=planned
            )
        except (InvalidInput, NotFound) as exc:
            problems.append(f"line {entry.line}: offer {entry.key!r}: {exc.message}")
            continue
        if offer is None:
            ids[entry.key] = f"planned:{entry.key}"
            planned[ids[entry.key]] = spec.offer_group
        else:
            ids[entry.key] = str(offer.id)
        changes.append(Imported(key=entry.key, line=entry.line, action=action))
    if problems:
        raise CatalogueErrors(problems)
    return changes


def export_catalogue(all_offers: list[Offer]) -> str:
    """The offers as a catalogue file, each field that differs from its default under the
    name a file gives it; offers without a key are written under their id."""
    keys = {o.id: o.key or o.id for o in all_offers}
    documents = []
    for offer in all_offers:
        stated = offer.model_dump(include=set(OfferSpec.model_fields), exclude_defaults=True)
        stated["kind"] = offer.kind.name
        stated["cycle"] = offer.cycle.name
        stated["prices"] = {
            p.currency: Money(p.minor_units, p.currency).amount for p in offer.prices
        }
        if offer.combined_items:
            stated["combined_items"] = [_item(i, keys) for i in offer.combined_items]
        document = {"key": keys[offer.id], **{to_camel(k): v for k, v in stated.items()}}
        documents.append(document)
    return yaml.safe_dump({"offers": documents}, sort_keys=False, allow_unicode=True)


def _item(item: CombinedItem, keys: dict[str, str]) -> dict[str, Any]:
    """A bundled item as a file writes it: the bundled offer by its key."""
    written: dict[str, Any] = {"offer": keys.get(item.offer_id, item.offer_id)}
    written["quantity"] = item.quantity
    if item.cycle is not None:
        written["cycle"] = item.cycle.name
    if item.custom_cycle_seconds is not None:
        written["customCycleSeconds"] = item.custom_cycle_seconds
    return written
