"""Offline token estimates and trimming that never separates a tool call from its result."""

from __future__ import annotations

from assistant.services.history import history_trim, tokens_estimate


def _turn(n: int, size: int = 700) -> list[dict]:
    call = {
        "id": f"c{n}",
        "type": "function",
        "function": {"name": "jira_search", "arguments": "{}"},
    }
    return [
        {"role": "user", "content": f"question {n}"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{n}", "content": "r" * size},
        {"role": "assistant", "content": f"answer {n}"},
    ]


def test_the_estimate_is_conservative_for_plain_text():
    # 3.5 characters a token: more tokens than a real tokenizer finds in English text.
    message = {"role": "user", "content": "List all tickets in project KAN " * 20}
    assert tokens_estimate([message]) >= len(message["content"]) / 4


def test_whole_turns_are_dropped_oldest_first():
    messages = _turn(1) + _turn(2) + _turn(3)
    budget = tokens_estimate(_turn(2) + _turn(3))
    assert history_trim(messages, budget=budget) == _turn(2) + _turn(3)


def test_a_tool_call_is_never_separated_from_its_result():
    messages = _turn(1) + _turn(2, size=5000)
    for budget in range(0, tokens_estimate(messages) + 1, 97):
        kept = history_trim(messages, budget=budget)
        calls = {c["id"] for m in kept for c in m.get("tool_calls", [])}
        results = {m["tool_call_id"] for m in kept if m["role"] == "tool"}
        assert calls == results
        assert kept[0]["role"] == "user"


def test_the_latest_turn_is_kept_even_over_budget():
    messages = _turn(1) + _turn(2, size=50_000)
    assert history_trim(messages, budget=10) == _turn(2, size=50_000)


def test_everything_is_kept_when_it_fits():
    messages = _turn(1) + _turn(2)
    assert history_trim(messages, budget=10_000) == messages
