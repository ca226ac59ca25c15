"""A fake Ollama (and OpenAI-compatible) server that records every request.

It runs inside the supervisor process, under a uid the candidate does not
have, so its recordings are evidence the candidate cannot rewrite. Replies
are chosen by the prompt marker a request carries: the reply to the k-th
prompt carries the k-th reply marker, which is how the harness and the host
tell the turns apart.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Bodies larger than this are recorded truncated: the candidate controls
# what the app sends and must not be able to exhaust the supervisor.
MAX_RECORDED_BODY = 256 * 1024
MAX_RECORDINGS = 200

# One id per server, random: nothing the app receives names the judge.
_COMPLETION_ID = os.urandom(6).hex()

MODELS = ["llama3:latest", "qwen2.5-coder:7b", "mistral:latest"]


class Recorder:
    """Thread-safe list of the requests the server received."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items = []
        self.dropped = 0
        # Requests received and not yet answered (the supervisor waits for
        # none before the first turn: an app still loading its models).
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    def started(self):
        with self._lock:
            self._in_flight += 1

    def finished(self):
        with self._lock:
            self._in_flight -= 1
            if self._in_flight <= 0:
                self._idle.notify_all()

    def wait_idle(self, timeout):
        """Waits until no request is being answered; False at the timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._in_flight <= 0, timeout)

    def add(self, item):
        with self._lock:
            if len(self._items) >= MAX_RECORDINGS:
                self.dropped += 1
                return
            item["seq"] = len(self._items) + 1
            self._items.append(item)

    def snapshot(self):
        with self._lock:
            return list(self._items)


def _text_of_request(body):
    """The user-visible text a request carries for the newest turn."""
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return ""
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


class Conversation:
    """Maps prompt markers to the replies (and context arrays) to send.

    Empty until the job arrives: the server starts before the answer does,
    so that a warm container has already paid for it.
    """

    def __init__(self):
        self.prompts = []
        self.replies = []
        # Told the index of each turn answered, once its reply is sent (the
        # supervisor takes a frame of the screen a moment later).
        self.on_reply = None

    def configure(self, prompts, replies):
        self.prompts = list(prompts)
        self.replies = list(replies)

    def reply_for(self, body):
        text = _text_of_request(body)
        # The newest marker wins: a prompt that quotes an earlier one is
        # still answered as the turn it was typed for.
        for index in range(len(self.prompts) - 1, -1, -1):
            if self.prompts[index] in text:
                return index, self.replies[index]
        return None, "I received a message I did not expect."


def make_handler(recorder, conversation):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ollama"
        sys_version = ""

        def log_message(self, *args):
            pass

        def _read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = b""
            if length > 0:
                raw = self.rfile.read(min(length, MAX_RECORDED_BODY * 4))
            elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = self._read_chunked()
            text = raw[:MAX_RECORDED_BODY].decode("utf-8", "replace")
            try:
                return json.loads(raw.decode("utf-8")), text
            except (ValueError, UnicodeDecodeError):
                return None, text

        def _read_chunked(self):
            chunks = []
            total = 0
            while total < MAX_RECORDED_BODY * 4:
                size_line = self.rfile.readline(64)
                try:
                    size = int(size_line.strip() or b"0", 16)
                except ValueError:
                    break
                if size == 0:
                    self.rfile.readline(8)
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
                total += size
            return b"".join(chunks)

        def _send_json(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(self, chunks, content_type="application/x-ndjson"):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                data = chunk.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")

        def _record(self, body, text):
            recorder.add(
                {
                    "t": time.monotonic(),
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "body_text": None if body is not None else text,
                }
            )

        _counted = False

        def parse_request(self):
            # Counted from its request line to the last byte of its answer
            # (a request whose body is still coming is in flight); a kept-
            # alive connection waiting for its next request is not.
            recorder.started()
            self._counted = True
            return super().parse_request()

        def handle_one_request(self):
            try:
                super().handle_one_request()
            finally:
                if self._counted:
                    self._counted = False
                    recorder.finished()

        def do_GET(self):
            self._record(None, "")
            path = self.path.split("?")[0].rstrip("/")
            if path == "/api/tags":
                self._send_json(200, {"models": [_model_entry(name) for name in MODELS]})
            elif path == "/api/ps":
                # The `ollama` package's `ps()`: nothing loaded yet.
                self._send_json(200, {"models": []})
            elif path == "/api/version":
                self._send_json(200, {"version": "0.6.8"})
            elif path in ("/v1/models", "/models"):
                self._send_json(
                    200,
                    {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "library"} for m in MODELS]},
                )
            elif path == "":
                self.send_response(200)
                self.send_header("Content-Length", "17")
                self.end_headers()
                self.wfile.write(b"Ollama is running")
            else:
                self._send_json(404, {"error": "not found"})

        def do_POST(self):
            body, text = self._read_body()
            self._record(body, text)
            path = self.path.split("?")[0].rstrip("/")
            if body is None or not isinstance(body, dict):
                self._send_json(400, {"error": "invalid JSON body"})
                return
            if path == "/api/show":
                # Apps check the chosen model with `ollama.show()` before chatting.
                name = body.get("model") or body.get("name") or MODELS[0]
                entry = _model_entry(name)
                self._send_json(200, {"modelfile": f"FROM {name}", "parameters": "", "template": "{{ .Prompt }}", "details": entry["details"], "model_info": {}, "modified_at": entry["modified_at"]})
                return
            index, reply = conversation.reply_for(body)
            model = body.get("model") or MODELS[0]
            stream = body.get("stream", path.startswith("/api/"))
            if path == "/api/chat":
                self._chat(model, reply, stream)
            elif path == "/api/generate":
                self._generate(model, reply, index, stream)
            elif path in ("/v1/chat/completions", "/chat/completions"):
                self._openai(model, reply, bool(body.get("stream", False)))
            else:
                self._send_json(404, {"error": "not found"})
                return
            if index is not None and conversation.on_reply is not None:
                conversation.on_reply(index)

        def _chat(self, model, reply, stream):
            done = {"model": model, "created_at": _now(), "done": True, "done_reason": "stop"}
            if not stream:
                self._send_json(200, dict(done, message={"role": "assistant", "content": reply}))
                return
            chunks = [
                json.dumps({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": piece}, "done": False}) + "\n"
                for piece in _pieces(reply)
            ]
            chunks.append(json.dumps(dict(done, message={"role": "assistant", "content": ""})) + "\n")
            self._send_stream(chunks)

        def _generate(self, model, reply, index, stream):
            # A context array unique to the turn: a reset must stop sending it.
            context = [9000 + 100 * (index if index is not None else 99) + i for i in range(8)]
            done = {"model": model, "created_at": _now(), "done": True, "context": context}
            if not stream:
                self._send_json(200, dict(done, response=reply))
                return
            chunks = [
                json.dumps({"model": model, "created_at": _now(), "response": piece, "done": False}) + "\n"
                for piece in _pieces(reply)
            ]
            chunks.append(json.dumps(dict(done, response="")) + "\n")
            self._send_stream(chunks)

        def _openai(self, model, reply, stream):
            if not stream:
                self._send_json(
                    200,
                    {
                        "id": "chatcmpl-" + _COMPLETION_ID,
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": len(_pieces(reply)), "total_tokens": 1 + len(_pieces(reply))},
                    },
                )
                return
            chunks = []
            # The fields the `openai` package's chunk type declares, so that
            # clients that validate strictly accept them too.
            head = {"id": "chatcmpl-" + _COMPLETION_ID, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            for piece in _pieces(reply):
                delta = dict(head, choices=[{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}])
                chunks.append("data: " + json.dumps(delta) + "\n\n")
            chunks.append("data: " + json.dumps(dict(head, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])) + "\n\n")
            chunks.append("data: [DONE]\n\n")
            self._send_stream(chunks, "text/event-stream")

    return Handler


def _pieces(text):
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _model_entry(name):
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": 4661224676,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "llama", "parameter_size": "8B", "quantization_level": "Q4_0"},
    }


def start(host="127.0.0.1", ports=(11434,)):
    """Starts one server per port in daemon threads.

    Returns the recorder and the conversation to configure once the job's
    markers are known.
    """
    recorder = Recorder()
    conversation = Conversation()
    handler = make_handler(recorder, conversation)
    for port in ports:
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name=f"fake-ollama-{port}", daemon=True).start()
    return recorder, conversation
