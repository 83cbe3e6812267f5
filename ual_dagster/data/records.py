"""Record schemas: how one parsed record (a JSON object, a Parquet or hub row) becomes a sample.

  alpaca   : {instruction, input (optional), output}
  dolly    : {instruction, context (optional), response}  -> input=context, output=response
  metamath : {query, response}            -> instruction=query, output=response (MetaMathQA)
  gsm8k    : {question, answer}           -> instruction=question, output=answer, which must end
             in the final-answer marker '#### <number>' (a row without it is rejected)
  chat     : {messages: [{role, content}]} -> the first user turn is the instruction, the first
             assistant turn after it the output; system turns and later turns are not used
  sharegpt : {conversations: [{from, value}]} -> the same, with from 'human'/'user' and
             'gpt'/'assistant'
  mapped   : any record, through a `columns:` map {instruction, input, output} -> field names

A schema is detected by the fields that define it (DEFINING_FIELDS, all of them present),
not by one key: a Dolly record has 'instruction' like Alpaca, but 'response' instead of
'output', so it is Dolly.

A record that does not fit becomes a Reject whose reason names the field; extra keys are
ignored. Values must already be strings: a number where text belongs is a wrong type,
not something to guess a rendering for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ual_dagster.data.samples import Reject, Sample, preview

Schema = Literal["alpaca", "dolly", "metamath", "gsm8k", "chat", "sharegpt", "mapped"]
# The fields whose presence defines a schema, checked in this order; the first whose fields
# are all present wins.
DEFINING_FIELDS: dict[Schema, tuple[str, ...]] = {
    "chat": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "dolly": ("instruction", "response"),
    "metamath": ("query", "response"),
    "gsm8k": ("question", "answer"),
}
# Every field a schema reads (the defining ones and the optional ones).
SCHEMA_FIELDS: dict[Schema, tuple[str, ...]] = {
    "chat": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output"),
    "dolly": ("instruction", "context", "response"),
    "metamath": ("query", "response"),
    "gsm8k": ("question", "answer"),
}
ACCEPTED = (
    "Alpaca {instruction, input, output}, Dolly {instruction, context, response}, MetaMathQA {query, response}, "
    "GSM8K {question, answer}, chat {messages: [{role, content}]}, ShareGPT {conversations: [{from, value}]}"
)
# GSM8K's final answer line: '#### 72' (signs, thousands separators and decimals allowed)
_GSM8K_FINAL = re.compile(r"####\s*[-+]?[\d,]*\.?\d+\s*$")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
}


class _RowError(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def detect_schema(keys: Iterable[str]) -> Schema | None:
    keys = set(keys)
    for schema, defining in DEFINING_FIELDS.items():
        if keys.issuperset(defining):
            return schema
    return None


def map_columns(record: Any, columns: Mapping[str, str]) -> Any:
    """A record seen through a `columns:` map {instruction, input, output} -> its own field names."""
    if not isinstance(record, dict):
        return record
    return {name: record.get(column) for name, column in columns.items()}


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


def _chat_turns(
    record: Mapping[str, Any],
    key: str = "messages",
    role_key: str = "role",
    text_key: str = "content",
    roles: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    messages = record.get(key)
    reason = f"bad {key}"
    if not isinstance(messages, list):
        raise _RowError(reason, f"'{key}' is {type(messages).__name__}, not a list")
    user: str | None = None
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _RowError(reason, f"message {i} is {type(msg).__name__}, not an object")
        role = msg.get(role_key)
        role = roles.get(role, role) if roles is not None and isinstance(role, str) else role
        if user is None and role == "user":
            user = _text(msg, text_key, required=True, label=f"{key}[{i}].{text_key}")
        elif user is not None and role == "assistant":
            return user, _text(msg, text_key, required=True, label=f"{key}[{i}].{text_key}")
    if user is None:
        raise _RowError(reason, "no user turn")
    raise _RowError(reason, "no assistant turn after the first user turn")


def _gsm8k_answer(record: Mapping[str, Any]) -> str:
    answer = _text(record, "answer", required=True)
    if not _GSM8K_FINAL.search(answer.strip()):
        raise _RowError("missing final answer '#### <number>'", "the GSM8K answer must end with its final-answer line")
    return answer


def _fields(schema: Schema, record: Mapping[str, Any]) -> tuple[str, str, str]:
    if schema in ("alpaca", "mapped"):
        return (
            _text(record, "instruction", required=True),
            _text(record, "input", required=False),
            _text(record, "output", required=True),
        )
    if schema == "dolly":
        return (
            _text(record, "instruction", required=True),
            _text(record, "context", required=False),
            _text(record, "response", required=True),
        )
    if schema == "metamath":
        return _text(record, "query", required=True), "", _text(record, "response", required=True)
    if schema == "gsm8k":
        return _text(record, "question", required=True), "", _gsm8k_answer(record)
    if schema == "sharegpt":
        instruction, output = _chat_turns(record, "conversations", "from", "value", _SHAREGPT_ROLES)
        return instruction, "", output
    instruction, output = _chat_turns(record)
    return instruction, "", output


def record_to_sample(schema: Schema, record: Any, dataset: str, source: str, raw: str | None = None) -> Sample | Reject:
    """The sample in `record`, or a Reject saying why not. `raw` is the original text, if any."""
    if not isinstance(record, dict):
        return Reject(source, "not an object", f"got {type(record).__name__}", raw or raw_text(record))
    try:
        instruction, input, output = _fields(schema, record)
    except _RowError as err:
        return Reject(source, err.reason, err.detail, raw if raw is not None else raw_text(record))
    return Sample.create(dataset, instruction, input, output, source)
