"""NotificationService: one resumable stream of outbox events per call."""

from __future__ import annotations

from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from microfin.loanbilling.v1 import notification_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2_grpc

from loanbilling.api.auth import Role
from loanbilling.api.edge import OPEN, Edge, streaming
from loanbilling.api.runners import on_threads
from loanbilling.contract.events import event_kinds_from_pb, event_to_pb
from loanbilling.domain.errors import InvalidArgument, NotFound, Refusals
from loanbilling.domain.events import DELINQUENCY_KINDS, EventFilter
from loanbilling.events.hub import EventHub, Heartbeat, HubClosed


class NotificationServicer(notification_service_pb2_grpc.NotificationServiceServicer):
    def __init__(self, hub: EventHub, heartbeat_s: float, edge: Edge = OPEN) -> None:
        self.hub = hub
        self.heartbeat_s = heartbeat_s
        self.edge = edge

    @streaming(Role.READER)
    async def StreamNotifications(self, request: api.StreamNotificationsRequest, context):
        refusals = Refusals()
        for name in ("after_sequence", "loan_id", "customer_id"):
            if getattr(request, name) < 0:
                refusals.add(name, "must be 0 or more")
        refusals.raise_if_any()
        only = EventFilter(
            kinds=event_kinds_from_pb(request.kinds) or DELINQUENCY_KINDS,
            loan_id=request.loan_id or None,
            customer_id=request.customer_id or None,
        )
        await self._check_subjects(only)
        try:
            async for item in self.hub.subscribe(request.after_sequence, only, self.heartbeat_s):
                if isinstance(item, Heartbeat):
                    yield api.StreamNotificationsResponse(
                        heartbeat=api.Heartbeat(sequence=item.sequence)
                    )
                else:
                    yield api.StreamNotificationsResponse(event=event_to_pb(item))
        except HubClosed:
            await context.abort_with_status(
                rpc_status.to_status(
                    status_pb2.Status(
                        code=code_pb2.UNAVAILABLE,
                        message="the server is shutting down: resume from the last "
                        "sequence received",
                    )
                )
            )

    async def _check_subjects(self, only: EventFilter) -> None:
        """Refuses, before streaming, a filter that names a loan or a customer that
        does not exist (NOT_FOUND, as every other call answers) or a loan of
        another customer than the one named: either would wait forever for an
        event that cannot come. One read by primary key, on the hub's worker threads."""
        if only.loan_id is None and only.customer_id is None:
            return
        owner, customer_known = await on_threads(self.hub.executor)(
            self.hub.outbox.filter_subjects,
            loan_id=only.loan_id,
            customer_id=only.customer_id,
        )
        if only.loan_id is not None and owner is None:
            raise NotFound("loan", only.loan_id)
        if not customer_known:
            raise NotFound("customer", only.customer_id)
        if only.loan_id is not None and only.customer_id is not None and owner != only.customer_id:
            raise InvalidArgument.of(
                "customer_id",
                f"loan {only.loan_id} is customer {owner}'s, not customer {only.customer_id}'s: "
                "the stream would match no event; name the loan alone, or its customer",
            )
