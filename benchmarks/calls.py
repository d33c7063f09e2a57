"""Added time per intercepted LLM call and per streamed chunk, sensor on vs off.

Every SDK talks to an in-process ``httpx2.MockTransport`` (no sockets), which
answers with the fake provider's own replies (``tests/fakes/fake_llm``), so the
network does not hide the sensor's cost. In ONE process run, blocks of calls
with the sensor on (``flightdeck_sensor.patch()``) and off (``unpatch()``: the
SDK's original entry points, i.e. not installed) are interleaved ABBA, so a
noisy shared machine hits both modes alike.

The sensor's side is the real one: ``init()`` with a real transport shipping to
a real collector subprocess on loopback, so every event goes through the real
``submit()`` -> queue -> sender thread -> HTTP path, and the sender thread's
GIL share is part of what is measured. The queue never reaches its cap.

Two clocks per call: the calling thread's CPU time (the primary figure: what
the sensor adds to the caller, insensitive to other processes competing for
the cores of a shared machine) and wall time (adds that noise, plus the sender
thread's share of the GIL when it runs during a call).

Per-chunk cost is the slope between a short and a long stream of the same
call: (added time at N_LONG deltas - added time at N_SHORT) / (N_LONG - N_SHORT),
which removes the per-call overhead.

An isolated measurement follows: the same patched entry points (the sensor's
real wrapper, recording real events) around a stand-in for the SDK function
that returns a prebuilt SDK response, or an instance of the SDK's own Stream
class yielding prebuilt chunks. Without the ~2 ms of SDK work around it, the
sensor's few microseconds are resolved on a noisy machine; the SDK-level
figures above bound the same cost from outside.

    .venv/bin/python -m benchmarks.calls [--quick] [--out .bench/calls.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import (
    CLOCKS,
    MESSAGES,
    ROOT,
    TOKEN,
    Collector,
    measure_abba,
    percentile,
    run_main,
    write_report,
)
from benchmarks._provider import (
    N_LONG,
    N_SHORT,
    Provider,
    anthropic_client,
    openai_client,
)
from benchmarks._requests import AGENT_REQUEST, Conversation

try:
    from flightdeck_sensor.transport._sender import BATCH_EVENTS
except ImportError:  # moved in a newer or older tree (scripts/bench --compare runs both)
    BATCH_EVENTS = 500

# The isolated path is ~50x cheaper than an SDK call: more calls per block, but
# few enough that one block's events (2 per call) stay far below the queue cap.
ISOLATED_FACTOR = 10
# Calls per block with the sender idle: a block's events (two a call; three for
# the agent-sized request, answered with a tool call) stay under one batch.
IDLE_SENDER_CALLS = (BATCH_EVENTS - 20) // 2
IDLE_SENDER_AGENT_CALLS = (BATCH_EVENTS - 20) // 3



# -- the calls ---------------------------------------------------------------------

@dataclass
class Case:
    name: str  # e.g. "openai.chat"
    label: str
    streamed: bool
    deltas: int
    call: Callable[[], Any]


def drain(stream: Any) -> int:
    count = 0
    for _ in stream:
        count += 1
    return count


def build_cases(provider: Provider, with_litellm: bool) -> list[Case]:
    def oai(deltas: int) -> Any:
        return openai_client(provider, deltas)

    def ant(deltas: int) -> Any:
        return anthropic_client(provider, deltas)

    o, a = oai(N_SHORT), ant(N_SHORT)
    cases = [
        Case("openai.chat", "OpenAI chat.completions.create", False, 0,
             lambda: o.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)),
        Case("openai.responses", "OpenAI responses.create", False, 0,
             lambda: o.responses.create(model="gpt-4o-mini", input="What is the capital")),
        Case("openai.embeddings", "OpenAI embeddings.create", False, 0,
             lambda: o.embeddings.create(model="text-embedding-3-small", input=["hello world"])),
        Case("anthropic.messages", "Anthropic messages.create", False, 0,
             lambda: a.messages.create(model="claude-3-5-haiku-latest", max_tokens=64,
                                       messages=MESSAGES)),
    ]
    for deltas in (N_SHORT, N_LONG):
        os_, as_ = oai(deltas), ant(deltas)

        def chat(c: Any = os_) -> int:
            return drain(c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                    stream=True))

        def responses(c: Any = os_) -> int:
            return drain(c.responses.create(model="gpt-4o-mini", input="What is the capital",
                                             stream=True))

        def messages(c: Any = as_) -> int:
            return drain(c.messages.create(model="claude-3-5-haiku-latest", max_tokens=64,
                                            messages=MESSAGES, stream=True))
        cases += [
            Case("openai.chat", "OpenAI chat.completions.create", True, deltas, chat),
            Case("openai.responses", "OpenAI responses.create", True, deltas, responses),
            Case("anthropic.messages", "Anthropic messages.create", True, deltas, messages),
        ]
    if with_litellm:
        import litellm

        def lite(deltas: int, stream: bool) -> Callable[[], Any]:
            client = oai(deltas)

            def call() -> Any:
                result = litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                            client=client, api_key="sk-bench", stream=stream)
                return drain(result) if stream else result
            return call

        cases.append(Case("litellm.completion", "litellm.completion (openai route)", False, 0,
                          lite(N_SHORT, False)))
        cases += [Case("litellm.completion", "litellm.completion (openai route)", True, d,
                       lite(d, True)) for d in (N_SHORT, N_LONG)]
    return cases


# -- sensor on / off -------------------------------------------------------------

def sensor_on() -> None:
    import flightdeck_sensor

    flightdeck_sensor.patch()


def sensor_off() -> None:
    import flightdeck_sensor

    flightdeck_sensor.unpatch()


def intercepted(case: Case) -> bool:
    """Whether a call of ``case`` produces events with the sensor on."""
    import flightdeck_sensor

    before = flightdeck_sensor.get_status()
    queued_before = before["queued"] + before["sent"]
    sensor_on()
    case.call()
    flightdeck_sensor.flush(5)
    after = flightdeck_sensor.get_status()
    return bool(after["queued"] + after["sent"] > queued_before)


# -- timing -------------------------------------------------------------------------

def set_sensor(enabled: bool) -> None:
    (sensor_on if enabled else sensor_off)()


def drain_queue() -> None:
    """Wait until the sender delivered what earlier blocks queued, so a block never
    meets a full queue (a refused event is a cheaper path than the one measured)."""
    import flightdeck_sensor

    flightdeck_sensor.flush(120)


def measure(case: Case, blocks: int, calls: int,
            switch: Callable[[bool], None] = set_sensor) -> dict[str, Any]:
    """``case`` in interleaved ABBA blocks of sensor on and off (_common.measure_abba),
    the queue drained before each block."""
    return {"case": case.name, "label": case.label, "streamed": case.streamed,
            "deltas": case.deltas} | measure_abba(case.call, blocks, calls, switch,
                                                  before_block=drain_queue)


def per_chunk(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slope of added time between the short and the long stream, per provider and clock."""
    found = []
    streamed = {(r["case"], r["deltas"]): r for r in results if r["streamed"]}
    span = N_LONG - N_SHORT
    for (name, deltas), short in streamed.items():
        long = streamed.get((name, N_LONG))
        if deltas != N_SHORT or long is None:
            continue
        row: dict[str, Any] = {"case": name, "label": short["label"]}
        for clock in CLOCKS:
            s, lg = short[clock], long[clock]
            slopes = [(b_long - b_short) / span for b_short, b_long
                      in zip(s["block_added_us"], lg["block_added_us"], strict=False)]
            row[clock] = {
                "added_per_chunk_us": (lg["added_median_us"] - s["added_median_us"]) / span,
                "added_per_chunk_p10_us": percentile(slopes, 0.1),
                "added_per_chunk_p90_us": percentile(slopes, 0.9),
                "off_per_chunk_us": (lg["off_median_us"] - s["off_median_us"]) / span,
                "on_per_chunk_us": (lg["on_median_us"] - s["on_median_us"]) / span,
            }
        found.append(row)
    return found


# -- isolated: the sensor's own path, without the SDK's cost around it ----------------

@dataclass
class Isolated:
    """A patched entry point called through the sensor's wrapper around a stand-in
    for the SDK function that returns a prebuilt SDK response (or stream)."""

    name: str
    label: str
    owner: Any  # class or module holding the patched attribute
    attribute: str
    instance: Any
    kwargs: dict[str, Any]
    stream_class: Any = None  # the SDK's Stream class, for streamed calls
    deltas: int = 0
    before: Callable[[], None] | None = None  # run before each call, on and off alike


def _fake_stream(model: Any, chunks: list[Any]) -> Any:
    """An instance of the SDK's own Stream class yielding prebuilt chunks; its
    ``response`` is that of the (consumed) stream ``model`` the chunks came from."""
    stream = object.__new__(type(model))
    stream._iterator = iter(chunks)
    stream.response = model.response
    return stream


def isolated_cases(provider: Provider) -> list[Isolated]:
    from anthropic._streaming import Stream as AnthropicStream
    from anthropic.resources.messages.messages import Messages
    from openai._streaming import Stream as OpenAIStream
    from openai.resources.chat.completions.completions import Completions
    from openai.resources.embeddings import Embeddings

    def oai(deltas: int) -> Any:
        return openai_client(provider, deltas)

    def ant(deltas: int) -> Any:
        return anthropic_client(provider, deltas)

    chat = {"model": "gpt-4o-mini", "messages": MESSAGES}
    messages = {"model": "claude-3-5-haiku-latest", "max_tokens": 64, "messages": MESSAGES}
    o, a = oai(N_SHORT), ant(N_SHORT)
    cases = [
        Isolated("openai.chat", "OpenAI chat.completions.create", Completions, "create",
                 o.chat.completions, chat),
        Isolated("openai.embeddings", "OpenAI embeddings.create", Embeddings, "create",
                 o.embeddings, {"model": "text-embedding-3-small", "input": ["hello world"]}),
        Isolated("anthropic.messages", "Anthropic messages.create", Messages, "create",
                 a.messages, messages),
    ]
    for deltas in (N_SHORT, N_LONG):
        cases += [
            Isolated("openai.chat", "OpenAI chat.completions.create", Completions, "create",
                     oai(deltas).chat.completions, chat | {"stream": True}, OpenAIStream, deltas),
            Isolated("anthropic.messages", "Anthropic messages.create", Messages, "create",
                     ant(deltas).messages, messages | {"stream": True}, AnthropicStream, deltas),
        ]
    # Last, so the indexes above stay put; reported in a row of its own.
    conversation = Conversation()
    cases.append(Isolated("openai.chat.agent", "OpenAI chat, agent-sized request", Completions,
                          "create", o.chat.completions,
                          chat | AGENT_REQUEST | {"messages": conversation.messages},
                          before=conversation.step))
    return cases


def isolated_entry(case: Isolated) -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """``(stand_in, wrapped)``: a stand-in for the SDK function that returns what one real
    call returned (a fresh Stream over the same chunks, for a stream), and the same stand-in
    wrapped by the sensor's own wrapper of that entry point, bound to the case's resource.
    None when the entry point is not wrapped (the sensor off or the interceptor missing)."""
    import wrapt

    sensor_off()
    prebuilt = getattr(case.owner, case.attribute)(case.instance, **case.kwargs)
    chunks = list(prebuilt) if case.stream_class is not None else None
    sensor_on()
    patched = case.owner.__dict__[case.attribute]
    if not isinstance(patched, wrapt.FunctionWrapper):
        return None

    def sdk_stand_in(*args: Any, **kwargs: Any) -> Any:
        return _fake_stream(prebuilt, chunks) if chunks is not None else prebuilt

    bound = wrapt.FunctionWrapper(sdk_stand_in, patched._self_wrapper).__get__(
        case.instance, type(case.instance))
    return sdk_stand_in, bound


def measure_isolated(case: Isolated, blocks: int, calls: int) -> dict[str, Any] | None:
    """None when the entry point is not wrapped or a stream is not proxied."""
    import wrapt

    entry = isolated_entry(case)
    if entry is None:
        return None
    sdk_stand_in, bound = entry
    streamed = case.stream_class is not None
    if streamed and not isinstance(bound(**case.kwargs), wrapt.ObjectProxy):
        return None
    enabled = {"on": True}
    before = case.before

    def call() -> Any:
        if before is not None:
            before()
        result = (bound if enabled["on"] else sdk_stand_in)(**case.kwargs)
        return drain(result) if streamed else result

    toggled = Case(case.name, case.label, streamed, case.deltas, call)
    return measure(toggled, blocks, calls, switch=lambda on: enabled.update(on=on))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few blocks, for a smoke run")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "calls.json"))
    parser.add_argument("--no-litellm", action="store_true", help="skip litellm (~5 s import)")
    args = parser.parse_args()
    blocks, calls = (4, 20) if args.quick else (10, 40)

    import flightdeck_sensor

    with tempfile.TemporaryDirectory(prefix="fd-bench-calls-") as workdir:
        collector = Collector(Path(workdir))
        try:
            flightdeck_sensor.init(server=collector.ingest_url, token=TOKEN, spool="off")
            provider = Provider()
            cases = build_cases(provider, with_litellm=not args.no_litellm)
            results, skipped = [], []
            for case in cases:
                if not intercepted(case):
                    skipped.append(f"{case.name}{' streamed' if case.streamed else ''}")
                    print(f"  {case.label}: NOT intercepted (interceptor missing?)",
                          file=sys.stderr)
                    sensor_off()
                    continue
                # litellm's streams cost ~50x a plain SDK call here: fewer of them.
                # Non-streamed calls are the budget's own setup: 5x as many, so the
                # median difference resolves tens of microseconds, not hundreds.
                slow = case.name.startswith("litellm") and case.streamed
                case_blocks, case_calls = ((blocks, max(5, calls // 4)) if slow else
                                           (blocks, calls) if case.streamed else
                                           (2 * blocks, calls * 5 // 2))
                result = measure(case, case_blocks, case_calls)
                results.append(result)
                cpu, wall = result["cpu"], result["wall"]
                print(f"  {case.label:36} {'stream' + str(case.deltas) if case.streamed else '':9}"
                      f" cpu off {cpu['off_median_us']:8.1f} added {cpu['added_median_us']:7.1f}"
                      f" | wall off {wall['off_median_us']:8.1f} added "
                      f"{wall['added_median_us']:7.1f} us", file=sys.stderr)
            isolated, isolated_busy = [], []
            for icase in isolated_cases(provider):
                # Sender idle: a block's events stay under one batch, so the sender
                # waits out its window and ships between blocks, as it does between a
                # real agent's calls (100 ms to 10 s apart).
                idle_calls = (IDLE_SENDER_AGENT_CALLS if icase.name.endswith(".agent")
                              else IDLE_SENDER_CALLS)
                measured = measure_isolated(icase, 2 * blocks, idle_calls)
                # Sender busy: calls back to back, ~80,000 events/s, the sender shipping
                # all the while (its share of the cores and caches shows on the caller).
                busy = measure_isolated(icase, blocks, calls * ISOLATED_FACTOR)
                if measured is None or busy is None:
                    skipped.append(f"isolated {icase.name}")
                    continue
                isolated.append(measured)
                isolated_busy.append(busy)
                print(f"  isolated {icase.label:29} "
                      f"{'stream' + str(icase.deltas) if icase.deltas else '':9} cpu added "
                      f"{measured['cpu']['added_median_us']:7.2f} us (sender busy: "
                      f"{busy['cpu']['added_median_us']:7.2f} us)", file=sys.stderr)
            sensor_off()
            delivered = flightdeck_sensor.flush(15)
            status = flightdeck_sensor.get_status()
            flightdeck_sensor.shutdown(5)
        finally:
            collector.stop()
    report = {
        "benchmark": "calls", "quick": args.quick,
        "sensor_source": str(Path(flightdeck_sensor.__file__).parent),
        "blocks": blocks, "calls_per_block": calls,
        "stream_deltas": [N_SHORT, N_LONG], "off_means": "flightdeck_sensor.unpatch()",
        "clocks": {"cpu": "calling thread's CPU time (time.thread_time_ns)",
                   "wall": "wall time (time.perf_counter_ns)"},
        "load_average": list(os.getloadavg()),
        "sink": "real transport -> collector subprocess on loopback; the queue is drained "
                "(flush) before each block, so no block meets a full queue",
        "calls": results, "per_chunk": per_chunk(results), "not_intercepted": skipped,
        "isolated": isolated, "isolated_per_chunk": per_chunk(isolated),
        "isolated_calls_per_block": IDLE_SENDER_CALLS,
        "isolated_agent_calls_per_block": IDLE_SENDER_AGENT_CALLS,
        "isolated_sender": "idle during a block (its events stay under one batch); ships "
                           "between blocks",
        "isolated_busy": isolated_busy, "isolated_busy_per_chunk": per_chunk(isolated_busy),
        "isolated_busy_calls_per_block": calls * ISOLATED_FACTOR,
        "sensor_status": {k: status.get(k) for k in ("sent", "dropped", "queued", "spooled")},
        "all_delivered": delivered,
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
