"""What a customer record must hold."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loanbilling.domain.errors import AlreadyExists, Refusals

MAX_NAME = 200
MAX_EMAIL = 254
MAX_PHONE = 32
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[0-9][0-9 \-]*[0-9]")


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    name: str
    email: str
    phone: str

    @classmethod
    def create(cls, *, name: str, email: str, phone: str) -> CustomerDetails:
        """Trims the fields and checks them; raises InvalidArgument naming each bad one."""
        name, email, phone = name.strip(), email.strip(), phone.strip()
        refusals = Refusals()
        if not name:
            refusals.add("name", "is required")
        elif len(name) > MAX_NAME:
            refusals.add("name", f"must be at most {MAX_NAME} characters")
        elif not name.isprintable():
            refusals.add("name", "must not contain control characters")
        if not email:
            refusals.add("email", "is required")
        elif len(email) > MAX_EMAIL or not EMAIL.fullmatch(email) or not email.isprintable():
            refusals.add(
                "email", f"must be an address like name@example.com, at most {MAX_EMAIL} characters"
            )
        if phone and (len(phone) > MAX_PHONE or not PHONE.fullmatch(phone)):
            refusals.add(
                "phone",
                f"must be digits with an optional leading '+', spaces and dashes, "
                f"at most {MAX_PHONE} characters",
            )
        refusals.raise_if_any()
        return cls(name=name, email=email, phone=phone)


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    email: str
    phone: str
    request_id: str | None = None

    @property
    def details(self) -> CustomerDetails:
        return CustomerDetails(self.name, self.email, self.phone)

    def check_retry(self, details: CustomerDetails) -> None:
        """A CreateCustomer retry must ask for the same customer as the request
        that used its request_id first."""
        if details != self.details:
            raise AlreadyExists(
                f"request_id {self.request_id!r} already created customer {self.id} "
                "with other details; use a new request_id for a new customer"
            )
