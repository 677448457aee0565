"""A stand-in for the credit service's check endpoint, until the real one (issue 5) exists.

It speaks the contract in services/invoice/adapters/credit_client.py and records what it saw.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def credit_stub(limits: dict[str, int], *, fail_with: int | None = None) -> FastAPI:
    """`limits`: customer_id -> headroom in minor units; a customer not listed is on hold."""
    app = FastAPI()
    app.state.calls = []

    @app.post("/v1/credit-checks")
    async def check(request: Request) -> Any:
        body = await request.json()
        app.state.calls.append({"body": body, "headers": dict(request.headers)})
        if fail_with is not None:
            return JSONResponse({"error": "boom"}, status_code=fail_with)
        customer, amount = body["customer_id"], body["amount"]["amount"]
        check_id = f"chk-{len(app.state.calls)}"
        if customer not in limits:
            return {
                "check_id": check_id,
                "outcome": "failed",
                "reasons": [{"code": "on_hold", "message": "customer is on credit hold"}],
            }
        if amount > limits[customer]:
            over = amount - limits[customer]
            return {
                "check_id": check_id,
                "outcome": "failed",
                "reasons": [{"code": "over_limit", "message": f"over the limit by {over}"}],
            }
        return {"check_id": check_id, "outcome": "passed", "reasons": []}

    return app
