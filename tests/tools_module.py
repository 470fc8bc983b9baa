"""A small bank for the tests of ``python:`` environments: typed, documented functions over
module-level state, with ``naig_reset`` restoring the start state."""

from __future__ import annotations

import json  # noqa: F401  (an imported module: nothing in it is a tool)
from os.path import join  # noqa: F401  (an imported function: not a tool)
from typing import Literal

from pydantic import BaseModel, Field


class Account(BaseModel):
    id: str
    owner: str
    balance: float
    currency: Literal["EUR", "USD"] = "EUR"


class Transfer(BaseModel):
    source: str = Field(description="The account the money leaves.")
    target: str
    amount: float = Field(gt=0)


ACCOUNTS: dict[str, Account] = {}


def _seed() -> None:
    ACCOUNTS.clear()
    ACCOUNTS["A-1"] = Account(id="A-1", owner="Ada Lovelace", balance=100.0)
    ACCOUNTS["A-2"] = Account(id="A-2", owner="Alan Turing", balance=20.0, currency="USD")


_seed()


def open_account(owner: str, currency: Literal["EUR", "USD"] = "EUR",
                 deposit: float = 0.0) -> Account:
    """Open an account for a customer.

    The new account gets the next free id.

    Args:
        owner: Full name of the account holder.
        currency: Currency the account is kept in.
        deposit: Money paid in at opening.
    """
    account = Account(id=f"A-{len(ACCOUNTS) + 1}", owner=owner, balance=deposit,
                      currency=currency)
    ACCOUNTS[account.id] = account
    return account


def get_balance(account_id: str) -> float:
    """The balance of an account.

    Args:
        account_id: The account, e.g. A-1.
    """
    return ACCOUNTS[account_id].balance


def transfer(order: Transfer) -> dict[str, float]:
    """Move money between two accounts of the same currency.

    Args:
        order: What to move, from where, to where.
    """
    source, target = ACCOUNTS[order.source], ACCOUNTS[order.target]
    if source.currency != target.currency:
        raise ValueError(f"{source.id} is in {source.currency}, {target.id} in {target.currency}")
    if source.balance < order.amount:
        raise ValueError(f"insufficient funds in {source.id}")
    source.balance -= order.amount
    target.balance += order.amount
    return {source.id: source.balance, target.id: target.balance}


async def list_accounts(owner: str | None = None) -> list[Account]:
    """All accounts, or those of one owner.

    Args:
        owner: Only this holder's accounts.
    """
    return [a for a in ACCOUNTS.values() if owner is None or a.owner == owner]


def helper(x):  # no type hints: not a tool
    """Not a tool."""
    return x


def undocumented(x: int) -> int:  # no docstring: not a tool
    return x


def naig_reset() -> None:
    """Back to the two seeded accounts."""
    _seed()
