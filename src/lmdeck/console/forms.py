"""What the console's forms share: the first validation error of a posted form, as one line for the page.

try:
    body = TeamCreate.model_validate(values)
except ValidationError as exc:
    return await _page(request, user, status_code=400, error=first_error(exc))
"""

from __future__ import annotations

from pydantic import ValidationError


def first_error(exc: ValidationError) -> str:
    """``"<field path>: <message>"`` of ``exc``'s first error (the message alone for a model-level one)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
