"""Offline token estimates and trimming that never separates a tool call from its result."""

from __future__ import annotations

from assistant.services.history import history_trim, tokens_estimate
from tests.assistant.chat import history_turn


def test_the_estimate_is_conservative_for_plain_text():
    # 3.5 characters a token: more tokens than a real tokenizer finds in English text.
    message = {"role": "user", "content": "List all tickets in project KAN " * 20}
    assert tokens_estimate([message]) >= len(message["content"]) / 4


def test_whole_turns_are_dropped_oldest_first():
    first, second, third = (history_turn(n, size=700) for n in (1, 2, 3))
    budget = tokens_estimate(second + third)
    assert history_trim(first + second + third, budget=budget) == second + third


def test_a_tool_call_is_never_separated_from_its_result():
    messages = history_turn(1, size=700) + history_turn(2, size=5000)
    for budget in range(0, tokens_estimate(messages) + 1, 97):
        kept = history_trim(messages, budget=budget)
        calls = {c["id"] for m in kept for c in m.get("tool_calls", [])}
        results = {m["tool_call_id"] for m in kept if m["role"] == "tool"}
        assert calls == results
        assert kept[0]["role"] == "user"


def test_the_latest_turn_is_kept_even_over_budget():
    messages = history_turn(1, size=700) + history_turn(2, size=50_000)
    assert history_trim(messages, budget=10) == history_turn(2, size=50_000)


def test_everything_is_kept_when_it_fits():
    messages = history_turn(1, size=700) + history_turn(2, size=700)
    assert history_trim(messages, budget=10_000) == messages
