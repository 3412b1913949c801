import asyncio

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.metrics import GatewayMetrics
from lmdeck.tracing.refusals import RefusalRecorder


class ListSink:
    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def submit(self, record: TraceRecord) -> asyncio.Future[None]:
        self.records.append(record)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_anonymous_refusals_are_sampled_per_address_and_minute() -> None:
    now = [0.0]
    sink, metrics = ListSink(), GatewayMetrics()
    recorder = RefusalRecorder(sink, metrics, per_minute=3, max_addresses=2, clock=lambda: now[0])
    for _ in range(10):
        recorder.refused(TraceRecord(status_code=401, error_type="invalid_api_key"), "10.0.0.1")
    recorder.refused(TraceRecord(status_code=401), "10.0.0.2")
    recorder.refused(TraceRecord(status_code=401), "10.0.0.3")  # past max_addresses this minute
    assert len(sink.records) == 4 and recorder.unrecorded == 8
    now[0] = 60.0
    recorder.refused(TraceRecord(status_code=401), "10.0.0.3")
    # A refusal that names a key is always recorded.
    recorder.refused(TraceRecord(status_code=403, key_id="k1", error_type="model_not_allowed"), "10.0.0.1")
    assert len(sink.records) == 6
    text = metrics.exposition().decode()
    assert 'lmdeck_requests_refused_total{reason="invalid_api_key",status="401"} 10.0' in text


def test_close_tells_whether_the_record_step_wrote_the_trace() -> None:
    recorder = RefusalRecorder(ListSink(), GatewayMetrics())
    recorder.open("req_a")
    recorder.open("req_b")
    recorder.observe(TraceRecord(request_id="req_a"))
    recorder.observe(TraceRecord(request_id="req_other"))
    assert recorder.close("req_a") is True
    assert recorder.close("req_b") is False
    assert recorder.close("req_other") is False
