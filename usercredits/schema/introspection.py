"""Introspection for signed-in callers only, where the settings say so (production).

Anonymous introspection would list every operation, including what only some callers may
run. The check runs at execution, not validation: validation is cached per document for
every caller, while this depends on who asks.
"""

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from usercredits.schema.context import Context
from usercredits.services.errors import Unauthenticated

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


def introspects(document: DocumentNode) -> bool:
    """Whether an operation of `document` selects `__schema` or `__type` at its root."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    seen: set[str] = set()

    def at_root(selections: SelectionSetNode) -> bool:
        for selection in selections.selections:
            if isinstance(selection, FieldNode) and selection.name.value in INTROSPECTION_FIELDS:
                return True
            if isinstance(selection, InlineFragmentNode) and at_root(selection.selection_set):
                return True
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    seen.add(name)
                    if at_root(fragments[name].selection_set):
                        return True
        return False

    return any(
        at_root(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


class SignedInIntrospection(SchemaExtension):
    """Refuses introspection to anonymous callers with UNAUTHENTICATED."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        caller = context.context
        document = context.graphql_document
        if (
            isinstance(caller, Context)
            and not caller.principal.signed_in
            and document is not None
            and introspects(document)
        ):
            refusal = Unauthenticated("sign in to introspect the schema")
            context.result = ExecutionResult(
                data=None, errors=[GraphQLError(refusal.message, original_error=refusal)]
            )
        yield
