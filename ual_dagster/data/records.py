"""Record schemas: how one parsed record (a JSON object, a Parquet or hub row) becomes a sample.

  alpaca : {instruction, input (optional), output}
  gsm8k  : {question, answer}            -> instruction=question, input="", output=answer
  chat   : {messages: [{role, content}]} -> the first user turn is the instruction, the first
           assistant turn after it the output; system turns and later turns are not used.

A record that does not fit becomes a Reject whose reason names the field; extra keys are
ignored. Values must already be strings: a number where text belongs is a wrong type,
not something to guess a rendering for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ual_dagster.data.samples import Reject, Sample, preview

Schema = Literal["alpaca", "gsm8k", "chat"]
# The key whose presence identifies a schema; checked in this order.
_SIGNATURE_KEYS: dict[str, Schema] = {"messages": "chat", "instruction": "alpaca", "question": "gsm8k"}


class _RowError(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def detect_schema(keys: Iterable[str]) -> Schema | None:
    keys = set(keys)
    for key, schema in _SIGNATURE_KEYS.items():
        if key in keys:
            return schema
    return None


def raw_text(record: Any) -> str:
    return preview(json.dumps(record, ensure_ascii=False, default=repr))


def _text(record: Mapping[str, Any], key: str, *, required: bool, label: str | None = None) -> str:
    name = label or key
    value = record.get(key)
    if value is None:
        if required:
            raise _RowError(f"missing field '{name}'")
        return ""
    if not isinstance(value, str):
        raise _RowError(f"wrong type for '{name}'", f"{type(value).__name__}, not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes read with surrogateescape, or a lone \\ud8xx escape
        raise _RowError("invalid UTF-8", f"field '{name}' has undecodable text at character {exc.start}") from None
    if required and not value.strip():
        raise _RowError(f"empty field '{name}'")
    return value


def _chat_turns(record: Mapping[str, Any]) -> tuple[str, str]:
    messages = record.get("messages")
    if not isinstance(messages, list):
        raise _RowError("bad messages", f"'messages' is {type(messages).__name__}, not a list")
    user: str | None = None
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _RowError("bad messages", f"message {i} is {type(msg).__name__}, not an object")
        role = msg.get("role")
        if user is None and role == "user":
            user = _text(msg, "content", required=True, label=f"messages[{i}].content")
        elif user is not None and role == "assistant":
            return user, _text(msg, "content", required=True, label=f"messages[{i}].content")
    if user is None:
        raise _RowError("bad messages", "no user turn")
    raise _RowError("bad messages", "no assistant turn after the first user turn")


def _fields(schema: Schema, record: Mapping[str, Any]) -> tuple[str, str, str]:
    if schema == "alpaca":
        return (
            _text(record, "instruction", required=True),
            _text(record, "input", required=False),
            _text(record, "output", required=True),
        )
    if schema == "gsm8k":
        return _text(record, "question", required=True), "", _text(record, "answer", required=True)
    instruction, output = _chat_turns(record)
    return instruction, "", output


def record_to_sample(
    schema: Schema, record: Any, dataset: str, source: str, raw: str | None = None
) -> Sample | Reject:
    """The sample in `record`, or a Reject saying why not. `raw` is the original text, if any."""
    if not isinstance(record, dict):
        return Reject(source, "not an object", f"got {type(record).__name__}", raw or raw_text(record))
    try:
        instruction, input, output = _fields(schema, record)
    except _RowError as err:
        return Reject(source, err.reason, err.detail, raw if raw is not None else raw_text(record))
    return Sample.create(dataset, instruction, input, output, source)
