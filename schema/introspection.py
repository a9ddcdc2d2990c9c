"""A limit on how deep introspection may nest.

The query depth limit does not look inside introspection fields, and `ofType` chains are
not counted by graphql-core's own introspection rule, so without this a client could nest
`__schema { types { fields { type { ofType { ofType ...` as deep as the token limit
allows. graphql-core's standard introspection query (what GraphiQL sends) nests 15 deep;
the default limit is 20.
"""

from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)


def introspection_depth(
    selections: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    *,
    inside: bool = False,
    seen: frozenset[str] = frozenset(),
) -> int:
    """How deep fields nest below (and including) the first introspection field."""
    if selections is None:
        return 0
    deepest = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            nested = inside or selection.name.value.startswith("__")
            below = introspection_depth(
                selection.selection_set, fragments, inside=nested, seen=seen
            )
            deepest = max(deepest, below + (1 if nested else 0))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(
                deepest,
                introspection_depth(selection.selection_set, fragments, inside=inside, seen=seen),
            )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                deepest = max(
                    deepest,
                    introspection_depth(
                        fragments[name].selection_set, fragments, inside=inside, seen=seen | {name}
                    ),
                )
    return deepest


def introspection_depth_rule(max_depth: int) -> type[ValidationRule]:
    class IntrospectionDepthRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragments = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = introspection_depth(node.selection_set, self._fragments)
            if depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"introspection nests {depth} deep; the limit is {max_depth}", node
                    )
                )

    return IntrospectionDepthRule
