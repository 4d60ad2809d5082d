"""Keeping a conversation within the model's context budget, offline.

Tokens are estimated, not counted: about 3.5 characters per token is conservative for
English and JSON with every OpenAI tokenizer, so no tokenizer table is downloaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4  # role and separators the API adds around each message
# Messages a conversation keeps (whole turns): older ones were long trimmed from what the
# model sees, and an unbounded row makes every turn read and write more.
STORED_MESSAGES = 200


def tokens_estimate(messages: list[dict[str, Any]]) -> int:
    """A conservative estimate of the tokens ``messages`` take."""
    return sum(
        math.ceil(len(json.dumps(m, ensure_ascii=False)) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD
        for m in messages
    )


def _turns(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split at each user message: a turn holds the question, the assistant's tool calls,
    their results and the answer, so dropping whole turns never orphans a result."""
    turns: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def _newest_turns(
    messages: list[dict[str, Any]], *, size: Callable[[list[dict[str, Any]]], int], budget: int
) -> list[dict[str, Any]]:
    """The newest whole turns whose ``size`` adds up to at most ``budget``, oldest dropped
    first. The latest turn is always kept."""
    kept: list[list[dict[str, Any]]] = []
    used = 0
    for turn in reversed(_turns(messages)):
        cost = size(turn)
        if kept and used + cost > budget:
            break
        kept.append(turn)
        used += cost
    return [message for turn in reversed(kept) for message in turn]


def history_trim(messages: list[dict[str, Any]], *, budget: int) -> list[dict[str, Any]]:
    """The newest whole turns of ``messages`` (no system prompt) that fit in ``budget``
    estimated tokens, oldest dropped first. The latest turn is always kept."""
    return _newest_turns(messages, size=tokens_estimate, budget=budget)


def history_cap(
    messages: list[dict[str, Any]], *, max_messages: int = STORED_MESSAGES
) -> list[dict[str, Any]]:
    """What a conversation stores: its newest whole turns, at most ``max_messages``
    messages (the latest turn always kept), so a long conversation's row stops growing."""
    return _newest_turns(messages, size=len, budget=max_messages)
