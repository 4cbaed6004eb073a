"""The one run reducer (`model/runs.advance`), its TTFT/tokens-per-second math, and the one prompt
validator (`model/prompts.prompt_requests`). Pure functions: no Ray, no UI."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import pytest

from raytui.errors import UsageError
from raytui.model.prompts import (
    Chunk,
    Done,
    Event,
    Failed,
    FailureKind,
    Loading,
    PromptRequest,
    RunState,
    Started,
    Timings,
    Waiting,
    prompt_requests,
    split_prompts,
)
from raytui.model.runs import RunProgress, advance, tokens_per_s, ttft

STARTED = Started("n" * 56, "10.0.0.5", "gpu-box", ("0",), "http://127.0.0.1:11434", 42)
WAITING = Waiting(1, 0, 2, "cluster")
LOADING = Loading("llama3", "n" * 56, "gpu-box", ("0",), 12.0)


def play(events: Sequence[tuple[float, Event]], submitted_at: float = 0.0) -> RunProgress:
    return reduce(lambda run, e: advance(run, e[1], e[0]), events, RunProgress(submitted_at))


def test_a_whole_run_streams_then_ends_done_with_the_servers_figures() -> None:
    timings = Timings(ttft_s=0.25, tokens_per_s=40.0, eval_count=3)
    run = play(
        [
            (1.0, WAITING),
            (2.0, STARTED),
            (2.5, LOADING),
            (3.0, Chunk("a")),
            (3.5, Chunk("b")),
            (4.0, Chunk("c")),
            (4.1, Done(timings, "stop")),
        ]
    )
    assert run.state is RunState.DONE and run.final is not None
    assert (run.text, run.chunks, run.waiting, run.started, run.started_at) == (
        "abc",
        3,
        WAITING,
        STARTED,
        2.0,
    )
    assert (run.first_chunk_at, run.last_chunk_at, run.loading) == (3.0, 4.0, None)
    assert (run.timings, run.done_reason, run.error) == (timings, "stop", None)
    assert (run.ttft_s(), run.tokens_per_s()) == (0.25, 40.0)  # the node's figures win


def test_each_event_kind_moves_the_state_as_documented() -> None:
    run = RunProgress(0.0)
    assert run.state is RunState.WAITING and run.final is None
    run = advance(run, WAITING, 1.0)
    assert (run.state, run.waiting) == (RunState.WAITING, WAITING)
    run = advance(run, STARTED, 2.0)
    assert (run.state, run.started_at) == (RunState.LOADING, 2.0)
    run = advance(run, LOADING, 3.0)
    assert (run.state, run.loading) == (RunState.LOADING, LOADING)
    run = advance(run, Chunk("x"), 4.0)
    assert (run.state, run.loading, run.text) == (RunState.STREAMING, None, "x")


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        (FailureKind.CANCELLED, RunState.CANCELLED),
        (FailureKind.MODEL_MISSING, RunState.FAILED),
        (FailureKind.NODE_DIED, RunState.FAILED),
        (FailureKind.INTERNAL, RunState.FAILED),
    ],
)
def test_failed_ends_the_run_failed_or_cancelled_and_keeps_the_text(
    kind: FailureKind, state: RunState
) -> None:
    failed = Failed("why", kind)
    run = play([(1.0, STARTED), (2.0, Chunk("half ")), (3.0, failed)])
    assert (run.state, run.final, run.error, run.text, run.timings) == (
        state,
        failed,
        "why",
        "half ",
        None,
    )


def test_failed_before_anything_started_is_final_from_waiting() -> None:
    run = play([(0.5, WAITING), (1.0, Failed("no GPU", FailureKind.NO_GPU))])
    assert run.state is RunState.FAILED and run.started is None and run.ttft_s() is None


def test_nothing_changes_a_run_once_it_ended() -> None:
    """A late chunk (a race with cancel) must not turn a cancelled run back into streaming."""
    ended = play([(1.0, STARTED), (2.0, Failed("cancelled", FailureKind.CANCELLED))])
    for late in (Chunk("late"), STARTED, WAITING, LOADING, Done(), Failed("again")):
        assert advance(ended, late, 9.0) is ended


def test_started_after_text_does_not_undo_streaming() -> None:
    run = play([(1.0, Chunk("a")), (2.0, STARTED)])
    assert (run.state, run.started, run.text) == (RunState.STREAMING, STARTED, "a")


def test_measured_figures_without_the_servers() -> None:
    run = play([(1.0, STARTED), (1.5, Chunk("a")), (2.0, Chunk("b")), (3.5, Chunk("c"))])
    assert run.ttft_s() == pytest.approx(0.5)  # from Started, not from the submit
    assert run.tokens_per_s() == pytest.approx(2 / 2.0)  # 2 gaps between 3 chunks in 2 s
    # Without Started the submit is the start; one chunk gives no rate.
    alone = play([(4.0, Chunk("a"))], submitted_at=1.0)
    assert (alone.ttft_s(), alone.tokens_per_s()) == (3.0, None)
    done = advance(run, Done(Timings(eval_count=9)), 4.0)  # no figures from the node
    assert done.ttft_s() == pytest.approx(0.5) and done.tokens_per_s() == pytest.approx(1.0)


def test_the_state_is_immutable() -> None:
    run = RunProgress(0.0)
    after = advance(run, Chunk("a"), 1.0)
    assert (run.text, run.state, after.text) == ("", RunState.WAITING, "a")
    with pytest.raises(AttributeError):
        run.text = "b"  # type: ignore[misc]


def test_the_rate_and_ttft_formulas() -> None:
    assert ttft(1.0, 1.25) == 0.25 and ttft(1.0, None) is None
    assert tokens_per_s(10, 1.0, 3.0) == 5.0
    for count, first, end in [(0, 1.0, 3.0), (None, 1.0, 3.0), (-1, 1.0, 3.0), (5, None, 3.0)]:
        assert tokens_per_s(count, first, end) is None
    assert tokens_per_s(5, 3.0, 3.0) is None  # no span to divide by


# -- the validator ----------------------------------------------------------------------------

TEMPLATE = PromptRequest(prompt="", backend="ollama", model="", num_gpus=1)


def test_every_prompt_times_every_model_shaped_like_the_template() -> None:
    template = PromptRequest("", "vllm", "", system="be brief", temperature=0.5, node="n1")
    requests = prompt_requests(["p1", "p2"], [" a ", "", "b"], template)
    assert [(r.prompt, r.model) for r in requests] == [
        ("p1", "a"),
        ("p1", "b"),
        ("p2", "a"),
        ("p2", "b"),
    ]
    assert {(r.backend, r.system, r.temperature, r.node) for r in requests} == {
        ("vllm", "be brief", 0.5, "n1")
    }


@pytest.mark.parametrize(
    ("prompts", "models", "changes", "message"),
    [
        ([], ["m"], {}, "the prompt is empty"),
        (["ok", "  "], ["m"], {}, "the prompt is empty"),
        (["p"], [" ", ""], {}, "no model given"),
        (["p"], ["m"], {"num_gpus": -1}, "GPUs per run must be from 0 to 4096"),
        (["p"], ["m"], {"num_gpus": float("nan")}, "GPUs per run must be from 0 to 4096"),
        (["p"], ["m"], {"num_gpus": 4097}, "GPUs per run must be from 0 to 4096"),
        (["p"], ["m"], {"temperature": 2.5}, "temperature must be between 0 and 2"),
        (["p"], ["m"], {"temperature": float("inf")}, "temperature must be between 0 and 2"),
        (["p"], ["m"], {"max_tokens": 0}, "max tokens must be from 1 to 10000000"),
    ],
)
def test_bad_requests_are_one_line_usage_errors(
    prompts: list[str], models: list[str], changes: dict[str, float], message: str
) -> None:
    from dataclasses import replace

    with pytest.raises(UsageError) as caught:
        prompt_requests(prompts, models, replace(TEMPLATE, **changes))  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_the_run_cap_and_the_callers_names_for_fields() -> None:
    with pytest.raises(UsageError, match=r"^6 runs at once is too many \(at most 4\)$"):
        prompt_requests(["a", "b", "c"], ["x", "y"], TEMPLATE, max_runs=4)
    assert len(prompt_requests(["a", "b"], ["x", "y"], TEMPLATE, max_runs=4)) == 4
    flags = {"num_gpus": "--gpus", "temperature": "--temperature", "max_tokens": "--max-tokens"}
    with pytest.raises(UsageError, match=r"^--temperature must be between 0 and 2$"):
        prompt_requests(["a"], ["x"], PromptRequest("", "ollama", "", temperature=3), names=flags)
    # 0 GPUs is a valid request (a CPU-only model server)
    assert prompt_requests(["a"], ["x"], PromptRequest("", "ollama", "", num_gpus=0))


def test_one_prompt_per_non_blank_line_kept_as_typed() -> None:
    assert split_prompts("first \r\n\n  \n second line\n") == ["first ", " second line"]


def test_the_node_side_stream_meter_uses_the_same_formulas() -> None:
    """`backends/stream_task.StreamMeter`, which the Ollama, OpenAI and vLLM tasks time with."""
    from raytui.backends.stream_task import StreamMeter

    meter = StreamMeter()
    silent = meter.timings(eval_count=0)
    assert (silent.ttft_s, silent.tokens_per_s, silent.eval_count) == (None, None, 0)
    meter.text()
    meter.text()
    assert meter.first is not None and meter.first >= meter.sent and meter.pieces == 2
    timings = meter.timings(rate=12.5, measure_total=True, prompt_eval_count=3)
    assert timings.ttft_s == meter.first - meter.sent
    assert (timings.tokens_per_s, timings.prompt_eval_count) == (12.5, 3)  # the server's rate
    assert timings.total_duration_s is not None and timings.total_duration_s >= timings.ttft_s
    assert meter.timings().total_duration_s is None  # only measured when asked
    assert meter.timings(count=0).tokens_per_s is None  # vLLM with no tokens
