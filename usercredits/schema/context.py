"""What every resolver receives: who is calling, the services to call, and the request id."""

from dataclasses import dataclass, field

from usercredits.services import Services
from usercredits.services.identity.access import ANONYMOUS, Principal


@dataclass
class Context:
    services: Services
    principal: Principal = ANONYMOUS
    request_id: str = ""
    address: str = ""
    """The caller's address (behind trusted proxies, the one they name)."""
    # Set by Strawberry from a websocket's connection_init payload.
    connection_params: dict[str, object] = field(default_factory=dict)
