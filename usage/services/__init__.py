"""Writes of usage: fetched buckets (idempotent upserts) and Kay's own metered calls.
Each keeps the daily rollup in step in its own transaction."""

from usage.services.buckets import usage_buckets_upsert
from usage.services.metering import (
    LlmCall,
    MeteredCall,
    UnrecordableCall,
    usage_record_llm_call,
    usage_record_llm_calls,
)

__all__ = [
    "LlmCall",
    "MeteredCall",
    "UnrecordableCall",
    "usage_buckets_upsert",
    "usage_record_llm_call",
    "usage_record_llm_calls",
]
