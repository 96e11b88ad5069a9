"""A local fake of an OpenAI-compatible chat endpoint, for tests (the LLM's test double).

``FakeLLMServer`` serves ``POST /v1/chat/completions`` on a loopback port (uvicorn
in a thread) and answers according to a script of modes, one per request (the last
mode repeats):

* ``good``: a valid answer that adds rendering terms to the current prompt;
* ``fenced``: the same, wrapped in a Markdown code fence;
* ``invalid_json``: text that is not JSON;
* ``schema``: JSON without ``negative_prompt`` and ``changes``;
* ``refusal``: an assistant message with ``refusal`` set and no content;
* ``slow``: waits ``slow_seconds`` before answering (longer than the client timeout);
* ``rule_breaking``: a restyled, layout-dropping prompt ("modern luxury … marble");
* ``error``: HTTP 500.

Every request body is kept in ``requests`` so tests can check what was sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

GOOD_TERMS = "soft contact shadows, realistic light falloff"


def _completion(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def good_answer(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "improved_prompt": f"{user['current_prompt']}, {GOOD_TERMS}",
        "negative_prompt": f"{user['current_negative_prompt']}, missing shadows",
        "changes": ["added 'soft contact shadows'", "added 'realistic light falloff'",
                    "added 'missing shadows' to the negative prompt"],
        "reasoning": "Trainers report missing shadows and flat light; contact shadows and "
                     "light falloff add depth without touching the design.",
        "expected_improvement": "more depth",
    }


def create_fake_llm(script: Sequence[str], slow_seconds: float = 2.0
                    ) -> tuple[FastAPI, list[dict[str, Any]]]:
    app = FastAPI()
    received: list[dict[str, Any]] = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        received.append(body)
        mode = script[min(len(received), len(script)) - 1]
        user = json.loads(next(m["content"] for m in body["messages"] if m["role"] == "user"))
        if mode == "error":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
        if mode == "slow":
            await asyncio.sleep(slow_seconds)
            return JSONResponse(_completion(json.dumps(good_answer(user))))
        if mode == "invalid_json":
            return JSONResponse(_completion("Sure! Here is a better prompt: photoreal, 8k"))
        if mode == "schema":
            answer = good_answer(user)
            del answer["negative_prompt"], answer["changes"]
            return JSONResponse(_completion(json.dumps(answer)))
        if mode == "refusal":
            return JSONResponse(_completion(None, refusal="I can't help with that request."))
        if mode == "rule_breaking":
            answer = good_answer(user)
            answer["improved_prompt"] = ("modern luxury living room with marble floors, "
                                         + user["current_prompt"].replace("layout", "look"))
            return JSONResponse(_completion(json.dumps(answer)))
        if mode == "fenced":
            return JSONResponse(_completion("```json\n" + json.dumps(good_answer(user)) + "\n```"))
        return JSONResponse(_completion(json.dumps(good_answer(user))))

    return app, received


class FakeLLMServer:
    def __init__(self, script: Sequence[str] = ("good",), slow_seconds: float = 2.0) -> None:
        self.app, self.requests = create_fake_llm(list(script), slow_seconds)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    @contextmanager
    def running(self, deadline_s: float = 10.0) -> Iterator[FakeLLMServer]:
        import uvicorn

        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=1, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + deadline_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(10)
