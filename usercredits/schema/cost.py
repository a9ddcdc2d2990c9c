"""What running one GraphQL operation will cost, known before any resolver runs.

Each field costs one, once for every item of the lists around it: a field taking `first`
(a connection: `ledger`, `orders`) holds `first` items (the field's default when none is
given) and everything selected inside it counts once per item (a connection's `edges` are
those same items, not a list of their own); any other list holds the size the schema
declares for it, or `list_size`. So 15 aliases of `ledger(first: 500) { edges { cursor
node { ...ten fields } } }` cost 15 x (1 + 500 x 13) = 97,515, and `{ wallet { userId } }`
costs 2. Fields that call the payment provider are counted apart, the same way.

A document is priced once, when it is validated, and the price is cached with it; a page
size given by a variable (`ledger(first: $first)`) stays a term of the price, and each
request puts its own value in (linear in the number of such terms, almost always one). Each
fragment is priced once, however often it is spread, so pricing is linear in the
document's size. Introspection fields cost one each: their depth is bounded apart.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)

from usercredits.values.numbers import is_whole

Paging = tuple[str, int]
"""A page size given by a variable: its name, and the size the field serves without it."""
Term = tuple[Paging, ...]
"""The paging variables whose values multiply a term's coefficient (none: a plain count)."""


@dataclass(frozen=True, slots=True)
class FieldCosts:
    """What the schema says of its fields' costs beyond one each, by coordinate
    ("Type.field", the root types named Query, Mutation and Subscription whatever their
    names): the fields that call the payment provider, and the lists known to hold more
    items than the default list size."""

    provider: frozenset[str] = frozenset()
    list_sizes: Mapping[str, int] = field(default_factory=dict)

    def unknown(self, schema: GraphQLSchema) -> list[str]:
        """The coordinates that name no field of `schema` (a renamed field, a typo)."""
        named = {*self.provider, *self.list_sizes}
        return sorted(c for c in named if _field_at(schema, c) is None)


def _field_at(schema: GraphQLSchema, coordinate: str) -> GraphQLField | None:
    type_name, _, field_name = coordinate.partition(".")
    roots = {name: type_ for type_, name in _root_names(schema).items()}
    return _field_of(roots.get(type_name) or schema.get_type(type_name), field_name)


def _root_names(schema: GraphQLSchema) -> dict[GraphQLObjectType, str]:
    """The root types by the names coordinates give them."""
    roots = {
        "Query": schema.query_type,
        "Mutation": schema.mutation_type,
        "Subscription": schema.subscription_type,
    }
    return {type_: name for name, type_ in roots.items() if type_ is not None}


def _field_of(owner: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if not isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
        return None
    found: GraphQLField | None = owner.fields.get(name)
    return found


class Amount:
    """A count that may depend on paging variables: a sum of coefficients, each times the
    values of its term's variables."""

    __slots__ = ("_terms",)

    def __init__(self, terms: Mapping[Term, int] | None = None) -> None:
        self._terms = dict(terms or {})

    @classmethod
    def of(cls, count: int) -> "Amount":
        return cls({(): count} if count else None)

    def __add__(self, other: "Amount") -> "Amount":
        merged = dict(self._terms)
        for term, coefficient in other._terms.items():
            merged[term] = merged.get(term, 0) + coefficient
        return Amount(merged)

    def times(self, multiplier: int | Paging) -> "Amount":
        """This amount once for each item of a list of `multiplier` items."""
        if isinstance(multiplier, int):
            return Amount({t: c * multiplier for t, c in self._terms.items()})
        return Amount({tuple(sorted((*t, multiplier))): c for t, c in self._terms.items()})

    def value(self, variables: Mapping[str, object]) -> int:
        """The count for these variable values (a missing or non-integer one: the field's
        own page size)."""
        return sum(
            coefficient * math.prod(_page(paging, variables) for paging in term)
            for term, coefficient in self._terms.items()
        )


def _page(paging: Paging, variables: Mapping[str, object]) -> int:
    name, default = paging
    given = variables.get(name)
    if is_whole(given):
        return max(given, 0)
    return default


@dataclass(frozen=True, slots=True)
class Price:
    """What a selection costs, and how many of its fields call the payment provider."""

    cost: Amount = field(default_factory=Amount)
    provider_calls: Amount = field(default_factory=Amount)

    def __add__(self, other: "Price") -> "Price":
        return Price(self.cost + other.cost, self.provider_calls + other.provider_calls)

    def times(self, multiplier: int | Paging) -> "Price":
        return Price(self.cost.times(multiplier), self.provider_calls.times(multiplier))


@dataclass(frozen=True, slots=True)
class OperationPrice:
    """The price of one operation of a document, and the defaults its variable definitions
    give (they stand for variables a request leaves out)."""

    name: str
    price: Price
    defaults: Mapping[str, int]

    def counts(self, variables: Mapping[str, object] | None) -> tuple[int, int]:
        """The cost and the provider calls of running it with `variables`."""
        given = {**self.defaults, **(variables or {})}
        return self.price.cost.value(given), self.price.provider_calls.value(given)


class _Pricing:
    """Prices of one document's selection sets, each fragment priced once. A spread that
    closes a cycle adds nothing: the NoFragmentCycles rule reports it. A field the schema
    does not have costs one, and validation refuses it."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, costs: FieldCosts, list_size: int
    ) -> None:
        self._schema = schema
        self._roots = _root_names(schema)
        self._costs = costs
        self._list_size = list_size
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._memo: dict[str, Price] = {}
        self._open: set[str] = set()

    def selections(self, node: SelectionSetNode | None, parent: GraphQLNamedType | None) -> Price:
        total = Price()
        for selection in node.selections if node is not None else ():
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                inner = self._type(selection.type_condition) or parent
                total += self.selections(selection.selection_set, inner)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return total

    def _type(self, condition: NamedTypeNode | None) -> GraphQLNamedType | None:
        return None if condition is None else self._schema.get_type(condition.name.value)

    def _field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Price:
        name = node.name.value
        coordinate = f"{self._name(parent)}.{name}"
        own = Price(Amount.of(1), Amount.of(coordinate in self._costs.provider))
        if name.startswith("__"):
            return own
        definition = _field_of(parent, name)
        if definition is None:
            return own + self.selections(node.selection_set, None)
        below = self.selections(node.selection_set, get_named_type(definition.type))
        return own + below.times(self._items(node, definition, coordinate))

    def _name(self, owner: GraphQLNamedType | None) -> str:
        if owner is None:
            return ""
        return (
            self._roots.get(owner, owner.name)
            if isinstance(owner, GraphQLObjectType)
            else owner.name
        )

    def _items(self, node: FieldNode, definition: GraphQLField, coordinate: str) -> int | Paging:
        """How many times the field's selections run."""
        first = definition.args.get("first")
        if first is not None:
            return self._first(node, first)
        if not is_list_type(get_nullable_type(definition.type)):
            return 1
        if coordinate.partition(".")[0].endswith("Connection"):
            return 1  # a connection's edges: its `first` counted them
        return self._costs.list_sizes.get(coordinate, self._list_size)

    def _first(self, node: FieldNode, argument: GraphQLArgument) -> int | Paging:
        default = argument.default_value
        page = default if isinstance(default, int) else self._list_size
        given = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(given, IntValueNode):
            return max(int(given.value), 0)  # a negative page is refused, and costs nothing
        if isinstance(given, VariableNode):
            return (given.name.value, page)
        return page

    def _fragment(self, name: str) -> Price:
        if name in self._memo:
            return self._memo[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._open:
            return Price()
        self._open.add(name)
        price = self.selections(fragment.selection_set, self._type(fragment.type_condition))
        self._open.discard(name)
        self._memo[name] = price
        return price


def price_operations(
    schema: GraphQLSchema, document: DocumentNode, costs: FieldCosts, list_size: int
) -> tuple[OperationPrice, ...]:
    """The price of each operation of `document`, linear in its size."""
    pricing = _Pricing(schema, document, costs, list_size)
    return tuple(
        OperationPrice(
            name=operation.name.value if operation.name else "anonymous",
            price=pricing.selections(operation.selection_set, _root(schema, operation)),
            defaults=_defaults(operation),
        )
        for operation in document.definitions
        if isinstance(operation, OperationDefinitionNode)
    )


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode) -> GraphQLObjectType | None:
    return schema.get_root_type(operation.operation)


def _defaults(operation: OperationDefinitionNode) -> dict[str, int]:
    return {
        d.variable.name.value: int(d.default_value.value)
        for d in operation.variable_definitions or ()
        if isinstance(d.default_value, IntValueNode)
    }
