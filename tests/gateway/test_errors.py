from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.providers.base import UpstreamError, UpstreamTimeout


def test_upstream_credential_refusal_is_the_gateways_problem() -> None:
    for status in (401, 403, 404):
        err = upstream_to_api_error(UpstreamError(status, f"upstream answered {status}"))
        assert err.status == 502
        assert err.code == "upstream_misconfigured"
        assert "api_key" in err.message


def test_bad_request_upstream_is_passed_to_the_client() -> None:
    body = {"error": {"message": "temperature is out of range"}}
    err = upstream_to_api_error(UpstreamError(400, "upstream answered 400", body=body))
    assert err.status == 400
    assert err.message == "temperature is out of range"


def test_rate_limit_keeps_retry_after() -> None:
    err = upstream_to_api_error(UpstreamError(429, "slow down", retry_after=3))
    assert err.status == 429
    assert err.headers == {"retry-after": "3"}


def test_timeouts_and_server_errors() -> None:
    assert upstream_to_api_error(UpstreamTimeout("too slow")).status == 504
    assert upstream_to_api_error(UpstreamError(500, "boom")).status == 502
    assert upstream_to_api_error(UpstreamError(503, "full", kind="queue_full")).status == 503
