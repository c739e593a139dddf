#!/usr/bin/env python3
"""A tiny OpenAI-compatible chat-completions server (stdlib only) for the OTel producer tests.

    python stub_openai.py <port>      # port 0 = let the OS pick one

The first stdout line is `listening <port>` (flushed), so a test can start it and read the port.
POST /v1/chat/completions answers non-streaming, chosen by the request's `model`:
  stub-plain      plain assistant text + usage
  stub-tool       no content, one tool call get_weather({"city":"Paris"}), finish_reason tool_calls
  stub-reasoning  content + DeepSeek/vLLM-style `reasoning_content` + reasoning_tokens in usage
Any other model gets 404 (OpenAI's error shape). The response `model` is the request's + "-2026",
so tests can tell gen_ai.request.model from gen_ai.response.model.
"""
import itertools
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_counter = itertools.count(1)
_lock = threading.Lock()


def _usage(prompt, completion, reasoning=None):
    u = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if reasoning is not None:
        u["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return u


def completion_for(model):
    """Returns (choice, usage) for a stub model, or None if the model is unknown."""
    if model == "stub-plain":
        msg = {"role": "assistant", "content": "Paris is the capital of France."}
        return {"index": 0, "message": msg, "finish_reason": "stop"}, _usage(21, 7)
    if model == "stub-tool":
        msg = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"}, separators=(",", ":"))},
            }],
        }
        return {"index": 0, "message": msg, "finish_reason": "tool_calls"}, _usage(48, 15)
    if model == "stub-reasoning":
        msg = {
            "role": "assistant",
            "content": "The answer is 42.",
            "reasoning_content": "First, consider 6*7. That is 42.",
        }
        return {"index": 0, "message": msg, "finish_reason": "stop"}, _usage(18, 20, reasoning=12)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 (http.server naming)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            return self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        if req.get("stream"):
            return self._send(400, {"error": {"message": "stub does not stream", "type": "invalid_request_error"}})
        model = req.get("model", "")
        found = completion_for(model)
        if found is None:
            return self._send(404, {"error": {"message": f"model {model!r} not found", "type": "invalid_request_error"}})
        choice, usage = found
        with _lock:
            seq = next(_counter)
        self._send(200, {
            "id": f"chatcmpl-{model}-{seq}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{model}-2026",
            "system_fingerprint": "fp_stub",
            "choices": [choice],
            "usage": usage,
        })

    def log_message(self, fmt, *args):  # keep stdout clean: the first line is the port
        sys.stderr.write("stub_openai: " + (fmt % args) + "\n")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print(f"listening {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
