"""A fake Ollama (and OpenAI-compatible) server that records every request.

It runs inside the supervisor process, under a uid the candidate does not
have, so its recordings are evidence the candidate cannot rewrite. Replies
are chosen by the prompt marker a request carries: the reply to the k-th
prompt carries the k-th reply marker, which is how the harness and the host
tell the turns apart.
"""

import json
import os
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A request body is read whole up to this size: an app must not be able to
# hide the old turns past the part that is read. Past it the request is
# recorded as unreadable (and a request after the reset that cannot be read
# whole counts as one carrying the old turns: the host fails closed).
MAX_BODY = 32 * 1024 * 1024
# Bodies larger than this are parsed one at a time, so that a few parallel
# requests cannot together exhaust the supervisor's memory.
LARGE_BODY = 1024 * 1024
# More JSON values than this (estimated from the raw text, before parsing)
# and a body is not parsed: Python would spend ~60 bytes on each.
MAX_NODES_TO_PARSE = 1_000_000
# A body with more values or deeper nesting than this is recorded as a
# summary (the newest prompt, the context array, and every string it holds
# as one text), so that the host's memory does not grow with the body's
# number of values: bulk can neither hide the old turns nor cost the host.
MAX_NODES_KEPT = 20_000
MAX_DEPTH_KEPT = 24
# The text of a body that is not JSON, kept for the host to search.
MAX_RECORDED_BODY = 256 * 1024
# Every string of a summarised body, joined; past it, unreadable.
MAX_STRINGS_TEXT = 4 * 1024 * 1024
# What all recordings together may hold (bodies, texts); past it, further
# requests are recorded without their content, as unreadable.
MAX_RECORDED_TOTAL = 16 * 1024 * 1024
MAX_HEADERS = 64
MAX_HEADER_VALUE = 8 * 1024
MAX_RECORDINGS = 200

MODELS = ["llama3:latest", "qwen2.5-coder:7b", "mistral:latest"]
# What Ollama's /api/tags says of each (sizes, families, quantisations as a
# real pull of these has them); a model the app names that is not listed
# gets the first one's.
MODEL_FACTS = {
    "llama3:latest": (4661224676, "llama", "8.0B", "Q4_0"),
    "qwen2.5-coder:7b": (4683087332, "qwen2", "7.6B", "Q4_K_M"),
    "mistral:latest": (4113301824, "llama", "7.2B", "Q4_0"),
}
# Per run, random and stable: a model's digest (sha256 hex) and when it was
# pulled (days before the run). Zeros or fixed dates name a fake server.
_DIGESTS = {}
_PULLED_DAYS_AGO = {}
_FACTS_LOCK = threading.Lock()

_LARGE_PARSE = threading.Lock()
# `\ud800`-`\udfff` written as escapes: only then can a lone surrogate
# appear in what json.loads gives (a raw one is not UTF-8).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(name):
    # Ollama (Go's encoding/json) refuses NaN and Infinity: so does this.
    raise ValueError(f"{name} is not JSON")


class Unreadable(Exception):
    """A request body that cannot be read whole as strict JSON."""


def parse_body(raw):
    """The body as strict JSON (what Ollama accepts), or Unreadable."""
    if values_estimate(raw) > MAX_NODES_TO_PARSE:
        raise Unreadable(f"more than {MAX_NODES_TO_PARSE} JSON values")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8") from None
    try:
        if len(raw) > LARGE_BODY:
            with _LARGE_PARSE:
                body = json.loads(text, parse_constant=_refuse_constant)
        else:
            body = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise Unreadable("JSON nested too deep to read") from None
    except ValueError as exc:
        raise Unreadable(f"not valid JSON ({str(exc)[:120]})") from None
    return body


def walk(body):
    """(values, deepest nesting, every key, string and number as one text,
    None past MAX_STRINGS_TEXT) of a parsed body; iterative."""
    nodes = 0
    depth_max = 0
    pieces = []
    size = 0
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > depth_max:
            depth_max = depth
        if isinstance(value, dict):
            for key, item in value.items():
                pieces.append(key)
                size += len(key) + 1
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in reversed(value))
        elif isinstance(value, str):
            pieces.append(value)
            size += len(value) + 1
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            piece = str(value)
            pieces.append(piece)
            size += len(piece) + 1
        if size > MAX_STRINGS_TEXT:
            return nodes, depth_max, None
    return nodes, depth_max, "\n".join(pieces)


_STRING_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"')


def strings_of(raw):
    """Every string (keys included) of a body already parsed as JSON, read
    from its text: far faster than walking millions of values. None past
    MAX_STRINGS_TEXT."""
    pieces = []
    size = 0
    for match in _STRING_TOKEN.finditer(raw):
        piece = json.loads(match.group(0))
        size += len(piece) + 1
        if size > MAX_STRINGS_TEXT:
            return None
        pieces.append(piece)
    return "\n".join(pieces)


def values_estimate(raw):
    """At least the number of JSON values in `raw`, less one (every value
    but the first follows a comma or an opening bracket)."""
    return raw.count(b",") + raw.count(b"[") + raw.count(b"{")


def has_lone_surrogate(raw, body):
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return True
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return False


def skeleton(body):
    """What the host reads of a summarised body besides its strings: the
    newest prompt (which turn it is for) and the context array."""
    kept = {}
    if isinstance(body, dict):
        text = _text_of_request(body)
        if isinstance(body.get("messages"), list):
            kept["messages"] = [{"role": "user", "content": text[:65536]}]
        elif isinstance(body.get("prompt"), str):
            kept["prompt"] = body["prompt"][:65536]
        context = body.get("context")
        if isinstance(context, list):
            kept["context"] = [n for n in context[:65536] if isinstance(n, int) and not isinstance(n, bool)]
    return kept


class Recorder:
    """Thread-safe list of the requests the server received."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items = []
        self.dropped = 0
        # What the recordings hold (bodies, texts), against MAX_RECORDED_TOTAL.
        self._kept = 0
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

    def add(self, item, size=0):
        """Records `item`, whose content takes `size` bytes; past the
        recordings' budget its content goes and it is marked unreadable."""
        with self._lock:
            if len(self._items) >= MAX_RECORDINGS:
                self.dropped += 1
                return
            if size and self._kept + size > MAX_RECORDED_TOTAL:
                for key in ("body", "body_text", "strings_text"):
                    item.pop(key, None)
                item["unreadable"] = f"the recordings' budget of {MAX_RECORDED_TOTAL >> 20} MiB was used up by earlier requests"
            else:
                self._kept += size
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
        # Told the index of each turn about to be answered (the supervisor
        # moves the app's clock: the model took seconds, as real ones do);
        # returns those seconds, which the reply's durations then add up to.
        self.before_reply = None
        # The app's clock (epoch seconds): the supervisor moves it on, and
        # the replies' times and `Date` headers must follow it, or an app
        # comparing them with its own clock tells the judge.
        self.clock = time.time

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

        def send_response(self, code, message=None):
            # As Go's net/http: a `Date` (the app's clock) and no `Server`
            # header (BaseHTTPRequestHandler's names Python).
            self.log_request(code)
            self.send_response_only(code, message)
            self.send_header("Date", self.date_time_string(conversation.clock()))

        def _read_body(self):
            """(raw bytes, why they are not the whole body or None)."""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self._read_chunked()
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True
                return b"", "a Content-Length that is not a number"
            if length <= 0:
                return b"", None
            if length > MAX_BODY:
                # Not read at all: the connection closes after the answer.
                self.close_connection = True
                return b"", f"a body of {length} bytes, past the {MAX_BODY >> 20} MiB read"
            raw = self.rfile.read(length)
            if len(raw) < length:
                self.close_connection = True
                return raw, f"a body cut short ({len(raw)} of {length} bytes)"
            return raw, None

        def _read_chunked(self):
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(64)
                try:
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    return b"".join(chunks), "a chunked body that is not well formed"
                if size == 0:
                    self.rfile.readline(8)
                    return b"".join(chunks), None
                if total + size > MAX_BODY:
                    self.close_connection = True
                    return b"", f"a chunked body past the {MAX_BODY >> 20} MiB read"
                chunk = self.rfile.read(size)
                chunks.append(chunk)
                total += len(chunk)
                if len(chunk) < size:
                    self.close_connection = True
                    return b"".join(chunks), "a chunked body cut short"
                self.rfile.readline(8)

        def _take_body(self):
            """Reads and records the request; the parsed body, or None when
            it is empty or cannot be read whole as strict JSON."""
            raw, cut = self._read_body()
            item = {"t": time.monotonic(), "method": self.command, "path": self.path, "headers": self._headers(), "bytes": len(raw)}
            body = None
            size = 0
            if cut is not None:
                item["unreadable"] = cut
            elif raw:
                try:
                    body = parse_body(raw)
                    if has_lone_surrogate(raw, body):
                        raise Unreadable("a lone surrogate (\\ud800-\\udfff) in a string, which is not Unicode text")
                except Unreadable as exc:
                    body = None
                    item["unreadable"] = str(exc)
            if body is not None:
                if values_estimate(raw) > MAX_NODES_KEPT:
                    # Too many to walk in Python (0.4 s for 330,000): its
                    # strings read from the text instead.
                    nodes, depth, strings = None, None, strings_of(raw)
                else:
                    nodes, depth, strings = walk(body)
                if nodes is not None and nodes <= MAX_NODES_KEPT and depth <= MAX_DEPTH_KEPT:
                    item["body"] = body
                    size = len(raw) if strings is None else len(strings) + 8 * nodes
                else:
                    item["body"] = skeleton(body)
                    item["summarised"] = {"values": nodes if nodes is not None else values_estimate(raw) + 1, "depth": depth}
                    if strings is None:
                        item["unreadable"] = f"its strings past the {MAX_STRINGS_TEXT >> 20} MiB kept"
                    else:
                        item["strings_text"] = strings
                        size = len(strings)
            elif raw:
                item["body_text"] = raw[:MAX_RECORDED_BODY].decode("utf-8", "replace")
                size = len(item["body_text"])
            else:
                item["body"] = None
            recorder.add(item, size)
            return body, cut

        def _headers(self):
            return [[str(k)[:256], str(v)[:MAX_HEADER_VALUE]] for k, v in list(self.headers.items())[:MAX_HEADERS]]

        def _send_json(self, status, payload):
            data = _go_json(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_text(self, status, text):
            # Go's plain answers (Gin's 404, Ollama's "is running").
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
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

        def _record_bodiless(self):
            recorder.add({"t": time.monotonic(), "method": self.command, "path": self.path, "headers": self._headers(), "body": None})

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
            self._record_bodiless()
            path = self.path.split("?")[0].rstrip("/")
            if path == "/api/tags":
                self._send_json(200, {"models": [_model_entry(name, conversation.clock) for name in MODELS]})
            elif path == "/api/ps":
                # The `ollama` package's `ps()`: nothing loaded yet.
                self._send_json(200, {"models": []})
            elif path == "/api/version":
                self._send_json(200, {"version": "0.6.8"})
            elif path in ("/v1/models", "/models"):
                clock = conversation.clock
                self._send_json(
                    200,
                    {"object": "list", "data": [{"id": m, "object": "model", "created": _pulled_at(m, clock), "owned_by": "library"} for m in MODELS]},
                )
            elif path == "":
                self._send_text(200, "Ollama is running")
            else:
                self._send_text(404, "404 page not found")

        # Ollama routes HEAD as GET (its headers, no body).
        do_HEAD = do_GET

        def _other(self):
            # Recorded like a POST (its body searched too); Ollama has no
            # such route, and Gin answers an unrouted method as it does an
            # unknown path.
            self._take_body()
            self._send_text(404, "404 page not found")

        do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _other

        def do_POST(self):
            body, cut = self._take_body()
            path = self.path.split("?")[0].rstrip("/")
            if cut is not None and cut.startswith("a body of"):
                self._send_json(413, {"error": "request body too large"})
                return
            if body is None or not isinstance(body, dict):
                self._send_json(400, {"error": "invalid JSON body"})
                return
            if path == "/api/show":
                # Apps check the chosen model with `ollama.show()` before chatting.
                name = body.get("model") or body.get("name") or MODELS[0]
                entry = _model_entry(name, conversation.clock)
                self._send_json(200, {"modelfile": f"FROM {name}", "parameters": "", "template": "{{ .Prompt }}", "details": entry["details"], "model_info": {}, "modified_at": entry["modified_at"]})
                return
            index, reply = conversation.reply_for(body)
            model = body.get("model") or MODELS[0]
            stream = body.get("stream", path.startswith("/api/"))
            known = path in ("/api/chat", "/api/generate", "/v1/chat/completions", "/chat/completions")
            took = None
            if index is not None and known and conversation.before_reply is not None:
                took = conversation.before_reply(index)
            stats = _stats(body, reply, took)
            if path == "/api/chat":
                self._chat(model, reply, stream, stats)
            elif path == "/api/generate":
                self._generate(model, reply, index, stream, stats)
            elif path in ("/v1/chat/completions", "/chat/completions"):
                self._openai(model, reply, bool(body.get("stream", False)), stats)
            else:
                self._send_text(404, "404 page not found")
                return
            if index is not None and conversation.on_reply is not None:
                conversation.on_reply(index)

        def _chat(self, model, reply, stream, stats):
            # The fields and their order as Ollama writes them.
            now = _created_at(conversation.clock)
            if not stream:
                self._send_json(200, dict({"model": model, "created_at": now, "message": {"role": "assistant", "content": reply}, "done_reason": "stop", "done": True}, **stats))
                return
            chunks = [
                _go_json({"model": model, "created_at": _created_at(conversation.clock), "message": {"role": "assistant", "content": piece}, "done": False}) + "\n"
                for piece in _pieces(reply)
            ]
            done = {"model": model, "created_at": _created_at(conversation.clock), "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": True}
            chunks.append(_go_json(dict(done, **stats)) + "\n")
            self._send_stream(chunks)

        def _generate(self, model, reply, index, stream, stats):
            # A context array unique to the turn: a reset must stop sending it.
            context = [9000 + 100 * (index if index is not None else 99) + i for i in range(8)]
            if not stream:
                done = {"model": model, "created_at": _created_at(conversation.clock), "response": reply, "done": True, "done_reason": "stop", "context": context}
                self._send_json(200, dict(done, **stats))
                return
            chunks = [
                _go_json({"model": model, "created_at": _created_at(conversation.clock), "response": piece, "done": False}) + "\n"
                for piece in _pieces(reply)
            ]
            done = {"model": model, "created_at": _created_at(conversation.clock), "response": "", "done": True, "done_reason": "stop", "context": context}
            chunks.append(_go_json(dict(done, **stats)) + "\n")
            self._send_stream(chunks)

        def _openai(self, model, reply, stream, stats):
            # Ollama's OpenAI routes: a small random id, its fingerprint,
            # token counts from the run's statistics.
            completion_id = f"chatcmpl-{random.randrange(999)}"
            created = int(conversation.clock())
            if not stream:
                self._send_json(
                    200,
                    {
                        "id": completion_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_ollama",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                        "usage": {
                            "prompt_tokens": stats["prompt_eval_count"],
                            "completion_tokens": stats["eval_count"],
                            "total_tokens": stats["prompt_eval_count"] + stats["eval_count"],
                        },
                    },
                )
                return
            chunks = []
            # The fields the `openai` package's chunk type declares, so that
            # clients that validate strictly accept them too.
            head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_ollama"}
            for piece in _pieces(reply):
                delta = dict(head, choices=[{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}])
                chunks.append("data: " + _go_json(delta) + "\n\n")
            chunks.append("data: " + _go_json(dict(head, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])) + "\n\n")
            chunks.append("data: [DONE]\n\n")
            self._send_stream(chunks, "text/event-stream")

    return Handler


def _pieces(text):
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _go_json(value):
    """`value` as Go's encoding/json writes it (Ollama's replies): compact,
    <, >, &, U+2028, U+2029 escaped. Non-ASCII is escaped too, unlike Go:
    the replies carry block glyphs for the screen, and an app that decodes a
    `text/event-stream` as Latin-1 (requests' default for `text/*`) would
    otherwise show them garbled through no fault of its own."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _rfc3339_nano(seconds):
    """Go's RFC3339Nano in UTC (as Ollama writes times): nanoseconds with
    the trailing zeros dropped."""
    whole = int(seconds)
    nanos = f"{int(round((seconds - whole) * 1e9)) % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ("." + nanos if nanos else "") + "Z"


def _created_at(clock):
    # A clock read is never a whole microsecond: the last digits vary.
    return _rfc3339_nano(clock() + random.randrange(1000) * 1e-9)


def _digest(name):
    with _FACTS_LOCK:
        return _DIGESTS.setdefault(name, os.urandom(32).hex())


def _pulled_at(name, clock):
    """When `name` was pulled, in epoch seconds: days before the run."""
    with _FACTS_LOCK:
        ago = _PULLED_DAYS_AGO.setdefault(name, random.uniform(3, 120) * 86400)
    return int(clock() - ago)


def _model_entry(name, clock):
    size, family, parameters, quantisation = MODEL_FACTS.get(name, MODEL_FACTS[MODELS[0]])
    return {
        "name": name,
        "model": name,
        "modified_at": _rfc3339_nano(_pulled_at(name, clock) + random.Random(name).random()),
        "size": size,
        "digest": _digest(name),
        "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family], "parameter_size": parameters, "quantization_level": quantisation},
    }


def _stats(body, reply, took):
    """The run statistics Ollama adds to a reply's last chunk (nanoseconds,
    token counts), made to add up to the `took` seconds the app's clock was
    moved while the reply was in flight."""
    prompt_tokens = max(1, len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4)
    eval_tokens = max(1, round(len(reply) / 3.6))
    total = int((took if isinstance(took, (int, float)) and took > 0 else random.uniform(1.0, 3.5)) * 1e9)
    load = random.randrange(8_000_000, 30_000_000)
    prompt_eval = min(total // 4, prompt_tokens * random.randrange(300_000, 900_000))
    eval_duration = max(1, total - load - prompt_eval - random.randrange(2_000_000, 9_000_000))
    return {
        "total_duration": total,
        "load_duration": load,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_eval,
        "eval_count": eval_tokens,
        "eval_duration": eval_duration,
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
