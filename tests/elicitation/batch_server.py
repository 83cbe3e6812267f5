"""A fake of OpenAI's Files and Batches endpoints for tests (FastAPI on loopback, in a thread).

It speaks the documented wire format, read by the real `openai` client:
- POST /v1/files (multipart: file, purpose) -> a File object; GET /v1/files/{id}/content -> the bytes.
- POST /v1/batches -> a Batch object (status 'validating'); GET /v1/batches/{id};
  GET /v1/batches (newest first, cursor pagination: limit, after, has_more);
  POST /v1/batches/{id}/cancel -> 'cancelling', then 'cancelled'.
- The input JSONL is validated as the API does (custom_id unique, method POST, url = the
  batch's endpoint, one model); a bad file fails the batch with `errors.data`.
- Each retrieve advances a batch: validating -> in_progress -> (per_poll lines answered per
  retrieve) -> finalizing -> completed, then output_file_id / error_file_id are set. Output
  lines are {id, custom_id, response: {status_code, request_id, body}, error: null}; answers
  with a non-200 status go to the error file the same way; requests never run (expired,
  cancelled) go there as {response: null, error: {code: batch_expired | batch_cancelled}}.
- POST /v1/chat/completions answers directly, with the same answerer (the online path).

Test controls: `hold` (in_progress batches do not advance), `plans` (per created batch, in
order: {"expire_after": n} answers n lines then expires, {"fail": True} fails validation),
`pause_at` (a request to that operation does its work, then hangs until cleared: the kill
tests SIGKILL the client there). Counters: `ops` per operation, `answered` per custom_id,
`submitted` per custom_id (lines of created batches), `chat_calls`.
"""

from __future__ import annotations

import asyncio
import email.parser
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.elicitation.fault_server import MARKER, SCORE_OF
from ual_dagster.loopback import chat_completion_body

Answerer = Callable[[dict], tuple[int, dict]]
MAX_FILE_BYTES = 50 << 20  # bounded: a test never needs more


def completion(text: str, model: str, prompt_tokens: int = 100, completion_tokens: int = 5) -> dict:
    return chat_completion_body(text, model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def marker_answerer(
    garbage: Callable[[int, int], bool] = lambda i, n: False,
    http_error: Callable[[int, int], int | None] = lambda i, n: None,
) -> Answerer:
    """Sample i (its '[#i]' marker) scores SCORE_OF(i); garbage(i, n) / http_error(i, n) decide its
    n-th request (0-based, counted over batch lines and chat calls alike)."""
    seen: Counter[int] = Counter()
    lock = threading.Lock()

    def answer(body: dict) -> tuple[int, dict]:
        messages = body.get("messages") or [{}]
        match = MARKER.search(str(messages[-1].get("content", "")))
        i = int(match.group(1)) if match else -1
        with lock:
            n = seen[i]
            seen[i] += 1
        status = http_error(i, n)
        if status is not None:
            return status, {"error": {"message": f"injected {status}", "type": "server_error", "code": None}}
        text = "Sorry, I would rather not say." if garbage(i, n) else f'{{"uncertainty": {SCORE_OF(i)}}}'
        return 200, completion(text, body.get("model", "m"))

    return answer


def forwarding_answerer(base_url: str) -> Answerer:
    """Answer each request by POSTing it to a loopback OpenAI-compatible server (e.g. the heuristic one)."""
    assert base_url.startswith("http://127.0.0.1:"), "loopback only"
    client = httpx.Client(base_url=base_url, timeout=30)

    def answer(body: dict) -> tuple[int, dict]:
        r = client.post("/chat/completions", json=body)
        return r.status_code, r.json()

    return answer


class BatchServer:
    def __init__(self, answer: Answerer, per_poll: int | None = None):
        self.answer = answer
        self.per_poll = per_poll
        self.hold = False
        self.plans: list[dict] = []
        self.pause_at: str | None = None
        self.paused = threading.Event()
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.ops: Counter[str] = Counter()
        self.submitted: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.chat_calls = 0
        self._ids = itertools.count(1)
        self.app = self._build()

    # -- helpers ---------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def _file(self, content: bytes, filename: str, purpose: str) -> dict:
        fid = self._id("file")
        self.files[fid] = {
            "id": fid,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "_content": content,
        }
        return self.files[fid]

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    async def _maybe_pause(self, op: str) -> None:
        if self.pause_at == op:
            self.paused.set()
            while self.pause_at == op:
                await asyncio.sleep(0.05)

    @property
    def created_batches(self) -> int:
        return self.ops["batches.create"]

    # -- batch processing --------------------------------------------------------------
    def _validate(self, content: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
        lines, errors, seen, models = [], [], set(), set()
        for n, raw in enumerate(content.decode().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "message": "not JSON", "line": n, "param": None})
                continue
            cid = line.get("custom_id")
            if not cid or cid in seen:
                errors.append(
                    {"code": "duplicate_custom_id", "message": f"custom_id {cid!r}", "line": n, "param": "custom_id"}
                )
            if line.get("method") != "POST" or line.get("url") != endpoint:
                errors.append(
                    {"code": "invalid_url", "message": "url must match the batch endpoint", "line": n, "param": "url"}
                )
            seen.add(cid)
            models.add((line.get("body") or {}).get("model"))
            lines.append(line)
        if len(models) > 1:
            errors.append(
                {"code": "mismatched_model", "message": "one model per batch", "line": None, "param": "model"}
            )
        return lines, errors

    def _result(self, cid: str, status: int, body: dict) -> dict:
        return {
            "id": self._id("batch_req"),
            "custom_id": cid,
            "response": {"status_code": status, "request_id": self._id("req"), "body": body},
            "error": None,
        }

    def _not_run(self, cid: str, code: str) -> dict:
        return {
            "id": self._id("batch_req"),
            "custom_id": cid,
            "response": None,
            "error": {"code": code, "message": f"This request was not executed ({code})."},
        }

    def _answer_lines(self, b: dict, n: int | None) -> None:
        todo = b["_lines"][b["_done"] :] if n is None else b["_lines"][b["_done"] : b["_done"] + n]
        for line in todo:
            status, body = self.answer(line["body"])
            self.answered[line["custom_id"]] += 1
            (b["_out"] if status == 200 else b["_err"]).append(self._result(line["custom_id"], status, body))
            b["request_counts"]["completed" if status == 200 else "failed"] += 1
            b["_done"] += 1

    def _finish(self, b: dict, status: str, not_run_code: str | None = None) -> None:
        for line in b["_lines"][b["_done"] :]:
            b["_err"].append(self._not_run(line["custom_id"], not_run_code or "batch_expired"))
        now = int(time.time())
        for key, lines in (("output_file_id", b["_out"]), ("error_file_id", b["_err"])):
            if lines:
                content = "".join(json.dumps(x) + "\n" for x in lines).encode()
                b[key] = self._file(content, f"{b['id']}_{key}.jsonl", "batch_output")["id"]
        b["status"] = status
        b[f"{status}_at"] = now

    def _advance(self, b: dict) -> None:
        now = int(time.time())
        if b["status"] == "validating":
            if b["_plan"].get("fail") or b["_errors"]:
                b["status"], b["failed_at"] = "failed", now
                b["errors"] = {
                    "object": "list",
                    "data": b["_errors"]
                    or [
                        {
                            "code": "invalid_request",
                            "message": "injected validation failure",
                            "line": None,
                            "param": None,
                        }
                    ],
                }
                return
            b["status"], b["in_progress_at"] = "in_progress", now
            return
        if b["status"] == "cancelling":
            self._finish(b, "cancelled", "batch_cancelled")
            return
        if b["status"] == "finalizing":
            self._finish(b, "completed")
            return
        if b["status"] != "in_progress" or self.hold:
            return
        expire_after = b["_plan"].get("expire_after")
        n = self.per_poll
        if expire_after is not None:
            left = max(0, expire_after - b["_done"])
            n = left if n is None else min(n, left)
        self._answer_lines(b, n)
        if expire_after is not None and expire_after <= b["_done"] < len(b["_lines"]):
            self._finish(b, "expired", "batch_expired")
        elif b["_done"] == len(b["_lines"]):
            b["status"], b["finalizing_at"] = "finalizing", now

    # -- the app ---------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/files")
        async def create_file(request: Request) -> JSONResponse:
            self.ops["files.create"] += 1
            raw = await request.body()
            if len(raw) > MAX_FILE_BYTES:
                return JSONResponse({"error": {"message": "file too large"}}, 413)
            header = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
            message = email.parser.BytesParser().parsebytes(header + raw)
            fields = {}
            for part in message.get_payload():
                name = part.get_param("name", header="content-disposition")
                fields[name] = (part.get_filename(), part.get_payload(decode=True))
            if fields.get("purpose", (None, b""))[1] != b"batch" or "file" not in fields:
                return JSONResponse({"error": {"message": "need file and purpose=batch"}}, 400)
            created = self._file(fields["file"][1], fields["file"][0] or "upload.jsonl", "batch")
            await self._maybe_pause("files.create")
            return JSONResponse(self._public(created))

        @app.get("/v1/files/{file_id}/content")
        async def file_content(file_id: str) -> Response:
            self.ops["files.content"] += 1
            if file_id not in self.files:
                return JSONResponse({"error": {"message": f"no file {file_id}"}}, 404)
            await self._maybe_pause("files.content")
            return Response(self.files[file_id]["_content"], media_type="application/octet-stream")

        @app.post("/v1/batches")
        async def create_batch(request: Request) -> JSONResponse:
            self.ops["batches.create"] += 1
            body = await request.json()
            fid = body.get("input_file_id")
            if fid not in self.files or body.get("completion_window") != "24h":
                return JSONResponse({"error": {"message": "bad input_file_id or completion_window"}}, 400)
            lines, errors = self._validate(self.files[fid]["_content"], body.get("endpoint"))
            bid = self._id("batch")
            now = int(time.time())
            self.batches[bid] = {
                "id": bid,
                "object": "batch",
                "endpoint": body.get("endpoint"),
                "errors": None,
                "input_file_id": fid,
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "expires_at": now + 86400,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "model": (lines[0].get("body") or {}).get("model") if lines else None,
                "_lines": lines,
                "_errors": errors,
                "_done": 0,
                "_out": [],
                "_err": [],
                "_plan": self.plans.pop(0) if self.plans else {},
            }
            for line in lines:
                self.submitted[line.get("custom_id")] += 1
            await self._maybe_pause("batches.create")
            return JSONResponse(self._public(self.batches[bid]))

        @app.get("/v1/batches/{batch_id}")
        async def retrieve(batch_id: str) -> JSONResponse:
            self.ops["batches.retrieve"] += 1
            b = self.batches.get(batch_id)
            if b is None:
                return JSONResponse({"error": {"message": f"no batch {batch_id}"}}, 404)
            self._advance(b)
            await self._maybe_pause("batches.retrieve")
            return JSONResponse(self._public(b))

        @app.get("/v1/batches")
        async def list_batches(limit: int = 20, after: str | None = None) -> JSONResponse:
            self.ops["batches.list"] += 1
            ordered = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
            if after is not None:
                ordered = [b for b in ordered if b["id"] < after]
            page = ordered[:limit]
            return JSONResponse(
                {
                    "object": "list",
                    "data": [self._public(b) for b in page],
                    "first_id": page[0]["id"] if page else None,
                    "last_id": page[-1]["id"] if page else None,
                    "has_more": len(ordered) > limit,
                }
            )

        @app.post("/v1/batches/{batch_id}/cancel")
        async def cancel(batch_id: str) -> JSONResponse:
            self.ops["batches.cancel"] += 1
            b = self.batches.get(batch_id)
            if b is None:
                return JSONResponse({"error": {"message": f"no batch {batch_id}"}}, 404)
            if b["status"] in ("validating", "in_progress", "finalizing"):
                b["status"], b["cancelling_at"] = "cancelling", int(time.time())
            return JSONResponse(self._public(b))

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            self.chat_calls += 1
            status, body = self.answer(await request.json())
            return JSONResponse(body, status)

        return app
