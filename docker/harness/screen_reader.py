"""Reads the candidate's window from outside its process.

The app runs on Qt's `vnc` platform plugin: its windows are composed into a
framebuffer that Qt serves over RFB on a loopback port, still headless (no X
server, no Xvfb). This module is an RFB 3.3 client in the supervisor (root,
another uid than the candidate): the pixels it reads are what a person
connected to that screen would see, produced by Qt's compositor and read
here, so nothing the candidate's Python code reports reaches them.

Facts of Qt 5.15's server this follows (shared/QT-VNC-NOTES.md): it speaks
RFB 3.3 only (security type 1, none, sent as one word with no result); a
client must send SetPixelFormat before SetEncodings or the server crashes;
without SetEncodings it sends no updates.

Frames leave as zlib-compressed BGRX rows (`frame_record`): compressing in
Python is one C call, while encoding a PNG would walk every pixel. The host
decodes them with a size check and renders the PNGs users see.
"""

import base64
import socket
import struct
import threading
import time
import zlib

import machine_load

# The screen a job asks for; the app's window is resized to fill it.
DEFAULT_SIZE = (1000, 700)
# The most a busy machine's stall may lengthen one sync (machine_load.py).
SYNC_BUSY_CAP_S = 4.0
# Largest screen accepted from the server (the host caps it again).
MAX_PIXELS = 4096 * 4096
# ServerCutText larger than this ends the connection (the clipboard is the
# candidate's to fill).
MAX_CUT_TEXT = 1 << 20


class ScreenError(Exception):
    """The screen could not be read; the message says why."""


class Screen:
    """A live copy of the server's framebuffer, kept by a reader thread."""

    def __init__(self, port, connect_timeout=10.0, bits=32):
        """`bits` a pixel: 32 (B, G, R, X) for frames; 8 (B2G3R3) for a
        connection that only types and syncs, whose every answer carries
        what the app repainted meanwhile, a quarter of the bytes."""
        self._sock = _connect(port, connect_timeout)
        self._send_lock = threading.Lock()
        self._changed = threading.Condition()
        self._bytes_per_pixel = bits // 8
        self.width, self.height = self._handshake(bits)
        self._fb = bytearray(self.width * self.height * self._bytes_per_pixel)
        # Requests sent, and updates received: the Nth answers the Nth (`_ask`).
        self._asked = 0
        self._answered = 0
        self.error = None
        self.updates = 0
        self._thread = threading.Thread(target=self._run, name="screen-reader", daemon=True)
        self._thread.start()
        self._ask(self.width, self.height)

    def _handshake(self, bits):
        sock = self._sock
        version = _recv_exact(sock, 12)
        if not version.startswith(b"RFB 003."):
            raise ScreenError(f"not an RFB server (it said {version!r})")
        sock.sendall(b"RFB 003.003\n")
        (security,) = struct.unpack(">I", _recv_exact(sock, 4))
        if security == 0:
            (length,) = struct.unpack(">I", _recv_exact(sock, 4))
            reason = _recv_exact(sock, min(length, 4096)).decode("utf-8", "replace")
            raise ScreenError(f"the screen server refused the connection: {reason}")
        if security != 1:
            raise ScreenError(f"the screen server wants security type {security}, not none")
        sock.sendall(b"\x01")  # ClientInit: share the screen
        init = _recv_exact(sock, 24)
        width, height = struct.unpack(">HH", init[:4])
        (name_length,) = struct.unpack(">I", init[20:24])
        _recv_exact(sock, min(name_length, 4096))
        if width == 0 or height == 0 or width * height > MAX_PIXELS:
            raise ScreenError(f"the screen is {width}x{height}, outside what can be read")
        if bits == 8:
            # 8 bits a pixel, true colour: red 3 bits, green 3, blue 2.
            pixel_format = struct.pack(">BBBBHHHBBBxxx", 8, 8, 0, 1, 7, 7, 3, 0, 3, 6)
        else:
            # 32 bits a pixel, depth 24, little-endian, true colour: B, G, R, X.
            pixel_format = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        with self._send_lock:
            sock.sendall(struct.pack(">Bxxx", 0) + pixel_format)
            sock.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw only
        return width, height

    def _run(self):
        try:
            while True:
                kind = _recv_exact(self._sock, 1)[0]
                if kind == 0:
                    self._read_update()
                elif kind == 1:  # SetColourMapEntries: not used in true colour
                    _, _, count = struct.unpack(">BHH", _recv_exact(self._sock, 5))
                    _recv_exact(self._sock, 6 * count)
                elif kind == 2:  # Bell
                    pass
                elif kind == 3:  # ServerCutText
                    (length,) = struct.unpack(">xxxI", _recv_exact(self._sock, 7))
                    if length > MAX_CUT_TEXT:
                        raise ScreenError(f"the server sent {length} bytes of clipboard text")
                    _recv_exact(self._sock, length)
                else:
                    raise ScreenError(f"unknown RFB message type {kind}")
        except (OSError, ScreenError) as exc:
            with self._changed:
                self.error = str(exc) or type(exc).__name__
                self._changed.notify_all()

    def _read_update(self):
        (count,) = struct.unpack(">xH", _recv_exact(self._sock, 3))
        sentinel = False
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", _recv_exact(self._sock, 12))
            if encoding != 0:
                raise ScreenError(f"the server used encoding {encoding}, which was not asked for")
            if x + w > self.width or y + h > self.height:
                raise ScreenError(f"a rectangle {w}x{h}+{x}+{y} lies outside the {self.width}x{self.height} screen")
            size = self._bytes_per_pixel
            data = _recv_exact(self._sock, w * h * size)
            with self._changed:
                row_bytes = w * size
                for row in range(h):
                    start = ((y + row) * self.width + x) * size
                    self._fb[start : start + row_bytes] = data[row * row_bytes : (row + 1) * row_bytes]
        with self._changed:
            self.updates += 1
            self._answered += 1
            self._changed.notify_all()

    def frame(self, timeout=2.0):
        """The whole screen as BGRX bytes, as it is now; None when the
        server did not answer in time.

        RFB updates carry no request id; this client only ever asks for
        whole areas (never incremental updates), and Qt's server answers
        such a request at once, with one update, and sends none unasked:
        the Nth update is the answer to the Nth request (see `_ask`)."""
        wanted = self._ask(self.width, self.height)
        if wanted is None:
            return None
        end = time.monotonic() + timeout
        # The app answers from its event loop: on a busy machine, late.
        busy = machine_load.Allowance(SYNC_BUSY_CAP_S)
        with self._changed:
            while self._answered < wanted and not self.error:
                remaining = busy.deadline(end) - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            if self._answered < wanted:
                return None
            return bytes(self._fb)

    def pointer(self, x, y, buttons=0):
        """Moves the screen's pointer to (x, y) with `buttons` held (a
        PointerEvent): Qt's server delivers it as a person's mouse, with the
        enter and move events a widget under it gets. False when it could
        not be sent."""
        x = max(0, min(self.width - 1, int(x)))
        y = max(0, min(self.height - 1, int(y)))
        try:
            with self._send_lock:
                self._sock.sendall(struct.pack(">BBHH", 5, buttons & 0xFF, x, y))
        except OSError:
            return False
        return True

    def keys(self, events, timeout=1.0):
        """Sends KeyEvents, each (X11 keysym, pressed), then waits until the
        server has read them: Qt's server stamps each as it reads it and
        delivers it to the focused window as a person's keyboard (Shift and
        Control are keys of their own). The events and the sync's request
        go in one write, so the server reads them together and answers at
        once, before it handles the keys (the app's repaint is not waited
        for). False when they could not be sent or were not read in time."""
        message = b"".join(struct.pack(">BBxxI", 4, 1 if down else 0, keysym & 0xFFFFFFFF) for keysym, down in events)
        wanted = self._ask(1, 1, before=message)
        return wanted is not None and self._wait_answer(wanted, timeout)

    def _ask(self, width, height, before=b""):
        """Asks for the area (0, 0, width, height) as it is now (not an
        incremental update: Qt's server keeps an incremental request open
        until the screen changes, and then its answer could not be told
        from the next request's); the number of the update that answers it,
        or None when it could not be sent."""
        with self._changed:
            if self.error:
                return None
            try:
                with self._send_lock:
                    self._sock.sendall(before + struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
            except OSError:
                return None
            self._asked += 1
            return self._asked

    def sync(self, timeout=1.0):
        """Waits until the server has read everything sent before: it answers
        a one-pixel request in order, after the messages ahead of it."""
        wanted = self._ask(1, 1)
        return wanted is not None and self._wait_answer(wanted, timeout)

    def _wait_answer(self, wanted, timeout):
        end = time.monotonic() + timeout
        with self._changed:
            while self._answered < wanted and not self.error:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return self._answered >= wanted

    def close(self):
        try:
            self._sock.close()
        except OSError:
            pass


def frame_record(name, at, screen, pixels):
    """One frame as the host reads it (`src/screen.rs`)."""
    return {
        "name": name,
        "t": at,
        "width": screen.width,
        "height": screen.height,
        "bgrx_zlib": base64.b64encode(zlib.compress(pixels, 1)).decode(),
    }


def _connect(port, timeout):
    """Connects once the app's QApplication has opened the port."""
    end = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            if time.monotonic() >= end:
                raise ScreenError(f"no screen server on port {port}: {exc}")
            time.sleep(0.02)


def _recv_exact(sock, count):
    chunks = []
    while count > 0:
        chunk = sock.recv(min(count, 1 << 20))
        if not chunk:
            raise ScreenError("the screen server closed the connection")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
