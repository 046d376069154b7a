"""A named family of interchangeable parts: metrics, blend methods, attention heads, TTA views.

A registry is the only place that knows every member of its family; code elsewhere asks it
by name and never branches on the names itself.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from ensemble.errors import EnsError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, family: str):
        self.family = family
        self._members: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding a member under `name`; a second member of the same name is a bug."""

        def add(member: T) -> T:
            if name in self._members:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._members[name] = member
            return member

        return add

    def get(self, name: str) -> T:
        try:
            return self._members[name]
        except KeyError:
            raise EnsError(
                f"unknown {self.family} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members
