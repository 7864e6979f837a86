"""Who may touch the node's state, stated in code and checked.

The chainstate, the mempool and the store they share have one owner: the thread that made them.
In a running node that is the state thread (``NodeService.call`` runs everything that touches
them there, one call at a time), so validation never races a read and nothing is seen half
updated. The event loop reads only immutable snapshots the state thread publishes after each
call (``NodeStatus``, the P2P inventory), or asks the state thread (``NodeService.read``).

``@state_owned`` on a class records, in each instance, the thread that constructed it. With
``TALLY_CHECK_THREADS=1`` in the environment when the class is defined (the test suite sets it
for every test and every node process it starts), every public method and property of the class
first checks that it runs on that thread and raises ``WrongThreadError`` otherwise, so a new
access from the event loop or a helper thread fails a test instead of working by the luck of
CPython making one particular read atomic. Without the variable the class is left as it is: the
check costs nothing in production.

``hand_over(obj)`` moves ownership to the calling thread, for an object made on one thread and
then given for good to another (none in the node today; tests that build state on one thread and
drive it from another use it).

What this leaves to others: which thread runs what (``node.service``); the snapshots themselves
(their modules).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

CHECK_THREADS_ENV = "TALLY_CHECK_THREADS"
_OWNER = "_tally_owner_thread"

C = TypeVar("C", bound=type)


class WrongThreadError(RuntimeError):
    """State was touched from a thread that does not own it."""


def checking() -> bool:
    """Whether classes defined from now on check their owner thread."""
    return os.environ.get(CHECK_THREADS_ENV) == "1"


def _check(obj: object, what: str) -> None:
    owner = obj.__dict__.get(_OWNER)
    if owner is None or owner[0] == threading.get_ident():
        return
    raise WrongThreadError(
        f"{type(obj).__name__}.{what} called on thread {threading.current_thread().name!r}; "
        f"it belongs to thread {owner[1]!r} (see node.state)"
    )


def _guarded(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(self: object, *args: Any, **kwargs: Any) -> Any:
        _check(self, what)
        return fn(self, *args, **kwargs)

    return guarded


def hand_over(obj: object) -> None:
    """Make the calling thread the owner of ``obj``."""
    thread = threading.current_thread()
    obj.__dict__[_OWNER] = (threading.get_ident(), thread.name)


def state_owned(cls: C) -> C:
    """Check, with ``TALLY_CHECK_THREADS=1``, that every public method and property of ``cls``
    (its own and those it inherits) runs on the thread that constructed the instance."""
    if not checking():
        return cls
    seen: set[str] = set()
    for klass in cls.__mro__[:-1]:  # not ``object``
        for name, attr in list(klass.__dict__.items()):
            if name in seen:
                continue
            seen.add(name)
            _guard(cls, name, attr)
    return cls


def _guard(cls: type, name: str, attr: Any) -> None:
    """Replace ``cls.name`` (``attr``, maybe inherited) by its checked version."""
    if name.startswith("_") and name != "__init__":
        return
    if name == "__init__":
        init = attr

        @functools.wraps(init)
        def owned_init(self: object, *args: Any, **kwargs: Any) -> None:
            if _OWNER not in self.__dict__:
                hand_over(self)
            init(self, *args, **kwargs)

        setattr(cls, name, owned_init)
    elif isinstance(attr, property):
        fget = _guarded(attr.fget, name) if attr.fget is not None else None
        fset = _guarded(attr.fset, name) if attr.fset is not None else None
        setattr(cls, name, property(fget, fset, attr.fdel, attr.__doc__))
    elif isinstance(attr, (staticmethod, classmethod, type)):
        return
    elif callable(attr):
        setattr(cls, name, _guarded(attr, name))
