"""Thin pyserial adapter for the UHF reader module: configure, inventory, survive.

``ReaderDriver(url)`` opens any ``serial_for_url`` URL, configures the reader, runs a continuous
inventory and hands each tag notice to ``on_notice(notice, t)`` (injected clock). It survives
garbled bytes, a silent reader and an unplugged adapter (docs/rfid.md, "What the driver
survives"). Protocol knowledge lives in :mod:`edge.rfid.codec`; here only I/O and timing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from edge.rfid import codec
from edge.rfid.codec import Command, ErrorResponse, Frame, FrameError, FrameType, TagNotice

__all__ = ["ReaderDriver", "NoticeCallback"]

log = logging.getLogger(__name__)

NoticeCallback = Callable[[TagNotice, float], None]
Clock = Callable[[], float]
SerialFactory = Callable[..., Any]

# Named thresholds, each with its reason.
#: Serial read timeout. Why: short enough to notice silence and stop requests promptly, long
#: enough not to spin (a 24-byte notice takes ~2 ms at 115,200 baud).
READ_TIMEOUT_S = 0.05
#: How long to wait for the answer to a command. Why: the module answers in a few ms; 0.5 s
#: covers a busy USB adapter and the tail of a notice burst queued in front of the answer.
RESPONSE_TIMEOUT_S = 0.5
#: Silence (no frame at all) after which the inventory is probed and restarted. Why: a multi
#: inventory ends after its rounds, and an empty field is silent too; a stop/start costs ~2 ms.
RESTART_AFTER_S = 2.0
#: Times a command is sent before its answer is given up. Why: one answer corrupted on a noisy
#: line must not cost a reconnect; two silent attempts in a row mean the reader is not there.
COMMAND_ATTEMPTS = 2
#: Failed liveness probes before the port is reopened. Why: one lost answer is line noise, two
#: in a row mean the module or adapter is wedged.
MAX_PROBE_FAILURES = 2
#: Idle time after which a half-received frame is dropped. Why: at 115,200 baud a maximal
#: notice arrives in < 10 ms; a partial frame older than this was truncated on the line.
IDLE_FLUSH_S = 0.1
#: Reconnect backoff. Why: a replugged USB adapter re-enumerates in ~0.5-2 s; doubling up to
#: 5 s keeps an absent reader from spinning the CPU while a replug is picked up within seconds.
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 5.0
#: Rounds per multiple-inventory command. Why: the field is 16 bits; the driver restarts the
#: inventory when it ends, so the largest value means the fewest restarts.
INVENTORY_ROUNDS = 0xFFFF
#: Most bytes taken in one read. Why: bounds the work between two silence/stop checks.
MAX_CHUNK_BYTES = 65536
#: Pause after the first byte of a burst before taking what has arrived. Why: a reader at its
#: link's cap sends ~480 notices/s, each its own wake-up; gathering 20 ms of them into one read
#: cuts the wake-ups tenfold (most of the node's CPU for RFID) and keeps a notice < 50 ms late.
COALESCE_S = 0.02
#: Minimum seconds between repeated warnings of one kind. Why: a wedged line must not flood logs.
LOG_INTERVAL_S = 30.0


class _NoAnswer(Exception):
    """The reader did not answer a command in time."""


class ReaderDriver:
    """One UHF reader on one serial port; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        region: int | None = codec.Region.EUROPE,
        power_dbm: float | None = 20.0,
        session: int | None = 0,
        target: int = 0,
        q: int = 4,
        rounds: int = INVENTORY_ROUNDS,
        header: int = codec.HEADER,
        end: int = codec.END,
        verify_crc: bool = True,
        clock: Clock = time.monotonic,
        read_timeout: float = READ_TIMEOUT_S,
        response_timeout: float = RESPONSE_TIMEOUT_S,
        command_attempts: int = COMMAND_ATTEMPTS,
        restart_after_s: float = RESTART_AFTER_S,
        max_probe_failures: int = MAX_PROBE_FAILURES,
        idle_flush_s: float = IDLE_FLUSH_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        coalesce_s: float = COALESCE_S,
        serial_factory: SerialFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if session is not None and session not in (0, 1):
            # S2/S3 make a tag that stays in the field go quiet after its first read.
            raise ValueError(f"session S{session} unsuitable for presence detection; use S0 or S1")
        self.url = url
        self.baudrate = baudrate
        self.region = region
        self.power_dbm = power_dbm
        self.query = codec.QueryParams(session=session, target=target, q=q) if session is not None else None
        self.rounds = rounds
        self.header = header
        self.end = end
        self.verify_crc = verify_crc
        self.clock = clock
        self.read_timeout = read_timeout
        self.response_timeout = response_timeout
        self.command_attempts = max(1, command_attempts)
        self.restart_after_s = restart_after_s
        self.max_probe_failures = max_probe_failures
        self.idle_flush_s = idle_flush_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.coalesce_s = coalesce_s
        self._serial_factory = serial_factory or serial.serial_for_url
        self._sleep = sleep
        self._reads = 0  # read calls on the port: the reader thread's wake-ups

        self._lock = threading.Lock()
        self._port: Any = None
        self._decoder = codec.StreamDecoder(header, end)
        self._on_notice: NoticeCallback | None = None
        self._state = "idle"
        self._firmware: str | None = None
        self._notices = 0
        self._reconnects = 0
        self._connects = 0
        self._inventory_restarts = 0
        self._probe_failures = 0
        self._rejected_notices: dict[str, int] = {}
        self._reader_errors: dict[str, int] = {}
        self._unexpected = 0
        self._callback_errors = 0
        self._config_errors: list[str] = []
        self._reconfigure = threading.Event()  # set by reconfigure(), served by the reader thread
        self._last_error: str | None = None
        self._last_notice_at: float | None = None
        self._last_frame_at: float | None = None
        self._last_data_at: float | None = None
        self._lost_at: float | None = None
        self._ever_connected = False
        self._last_log: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------
    # public surface

    def run(self, on_notice: NoticeCallback, stop: threading.Event) -> None:
        """Read until ``stop`` is set, reconnecting as needed. Blocks."""
        self._on_notice = on_notice
        backoff = self.backoff_initial_s
        try:
            while not stop.is_set():
                if self._port is None:
                    if not self._connect():
                        self._state = "reconnecting"
                        stop.wait(backoff)
                        backoff = min(backoff * 2, self.backoff_max_s)
                        continue
                    backoff = self.backoff_initial_s
                try:
                    self._step()
                except (serial.SerialException, OSError) as exc:
                    self._lose(f"{type(exc).__name__}: {exc}")
                except _NoAnswer as exc:
                    self._lose(f"no answer: {exc}")
                except Exception as exc:  # a bug must not kill the reader thread silently
                    if self._should_log("bug"):
                        log.exception("reader %s: unexpected error", self.url)
                    self._lose(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            self._shutdown()

    def reconfigure(self, *, power_dbm: float | None = None, region: int | None = None) -> None:
        """New power or region from a pushed node config: the reader thread stops the inventory,
        sends the settings and starts it again at its next step (and after every reconnect)."""
        if power_dbm is not None:
            self.power_dbm = power_dbm
        if region is not None:
            self.region = region
        self._reconfigure.set()

    def start(self, on_notice: NoticeCallback) -> Callable[[], None]:
        """Run on a daemon thread; returns the function that stops it (and waits for it)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("driver already running")
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(on_notice, stop), name=f"rfid-reader:{self.url}", daemon=True
        )
        self._thread = thread
        thread.start()

        def cancel() -> None:
            stop.set()
            # worst case: stop lands mid-configuration, one command still waiting for its answer
            thread.join(timeout=2.0 + 2 * self.command_attempts * self.response_timeout)

        return cancel

    def health(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the driver's state and counters.

        ``state``: ``idle`` (not started), ``connecting``, ``configuring``, ``connected`` (reading),
        ``restarting`` (probing a silent reader), ``reconnecting`` (port lost, backing off),
        ``stopped``. ``last_read_age_s`` is the age of the last tag notice (None before the
        first); ``frames_rejected`` counts rejects by reason (stream framing and tag CRC).
        """
        now = self.clock()
        with self._lock:
            stats = dict(self._decoder.stats)
            garbage = stats.pop("garbage_bytes")
            rejected = {k: v for k, v in stats.items() if v}
            for k, v in self._rejected_notices.items():
                rejected[k] = rejected.get(k, 0) + v
            if self._unexpected:
                rejected["unexpected"] = self._unexpected
            return {
                "url": self.url,
                "state": self._state,
                "connected": self._port is not None,
                "firmware": self._firmware,
                "notices": self._notices,
                "last_read_age_s": _age(now, self._last_notice_at),
                "last_frame_age_s": _age(now, self._last_frame_at),
                "frames_ok": self._decoder.frames_ok,
                "frames_rejected": rejected,
                "frames_rejected_total": sum(rejected.values()),
                "garbage_bytes": garbage,
                "reads": self._reads,
                "reader_errors": dict(self._reader_errors),
                "reconnects": self._reconnects,
                "connects": self._connects,
                "inventory_restarts": self._inventory_restarts,
                "callback_errors": self._callback_errors,
                "config_errors": list(self._config_errors),
                "last_error": self._last_error,
            }

    # ------------------------------------------------------------------------------------
    # connection lifecycle

    def _connect(self) -> bool:
        self._state = "connecting"
        try:
            port = self._serial_factory(self.url, baudrate=self.baudrate, timeout=self.read_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._last_error = f"open failed: {exc}"
            self._warn("open", "cannot open %s: %s", self.url, exc)
            return False
        with self._lock:
            self._port = port
            self._decoder.reset()
        try:
            with contextlib.suppress(AttributeError, NotImplementedError):
                port.reset_input_buffer()
            self._state = "configuring"
            self._reconfigure.clear()  # what reconfigure() asked for is in the attributes now
            self._configure()
            self._start_inventory()
        except (serial.SerialException, OSError, _NoAnswer) as exc:
            self._lose(f"configure failed: {exc}")
            return False
        except Exception as exc:  # a malformed answer must not kill the reader thread
            if self._should_log("bug"):
                log.exception("reader %s: unexpected error while configuring", self.url)
            self._lose(f"configure failed: {type(exc).__name__}: {exc}")
            return False
        now = self.clock()
        self._last_frame_at = self._last_data_at = now
        self._probe_failures = 0
        self._connects += 1
        if self._ever_connected:
            self._reconnects += 1
            down = _age(now, self._lost_at)
            log.info(
                "reader %s recovered (reconnect %d, down %.1f s)", self.url, self._reconnects, down or 0.0
            )
        self._ever_connected = True
        self._state = "connected"
        return True

    def _lose(self, reason: str) -> None:
        """The port is gone or useless: close it; ``run`` reopens it with backoff."""
        self._last_error = reason
        self._lost_at = self.clock()
        self._warn("lost", "reader %s lost: %s", self.url, reason)
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
        self._state = "reconnecting"

    def _shutdown(self) -> None:
        port = self._port
        if port is not None:
            with contextlib.suppress(Exception):
                port.write(codec.cmd_stop(header=self.header, end=self.end))
                port.flush()
            with contextlib.suppress(Exception):
                port.close()
        with self._lock:
            self._port = None
        self._state = "stopped"

    # ------------------------------------------------------------------------------------
    # protocol steps

    def _configure(self) -> None:
        h, e = self.header, self.end
        errors: list[str] = []
        # A module left in a multiple inventory by a previous run keeps streaming: stop it first.
        # (Its acknowledgement may be missing when nothing ran; only the next answers count.)
        with contextlib.suppress(_NoAnswer):
            self._transact(codec.cmd_stop(header=h, end=e), Command.STOP_INVENTORY)
        answer = self._transact(codec.cmd_module_info(header=h, end=e), Command.MODULE_INFO)
        if isinstance(answer, Frame):
            try:
                self._firmware = codec.decode_module_info(answer)[1]
            except FrameError as exc:
                errors.append(f"module info: {exc}")
        steps: list[tuple[str, bytes, int]] = []
        if self.region is not None:
            steps.append(
                (
                    f"region 0x{int(self.region):02X}",
                    codec.cmd_set_region(self.region, header=h, end=e),
                    Command.SET_REGION,
                )
            )
        if self.power_dbm is not None:
            steps.append(
                (
                    f"power {self.power_dbm} dBm",
                    codec.cmd_set_power(self.power_dbm, header=h, end=e),
                    Command.SET_POWER,
                )
            )
        if self.query is not None:
            steps.append(
                (
                    f"query S{self.query.session} Q{self.query.q}",
                    codec.cmd_set_query(self.query, header=h, end=e),
                    Command.SET_QUERY,
                )
            )
        for what, cmd, code in steps:
            answer = self._transact(cmd, code)
            if isinstance(answer, ErrorResponse):
                errors.append(f"{what}: refused with {answer.code_hex} ({answer.name})")
            elif not codec.is_success(answer, code):
                errors.append(f"{what}: unexpected answer {answer.params.hex()}")
        self._config_errors = errors
        for err in errors:
            self._warn("config", "reader %s config: %s", self.url, err)

    def _start_inventory(self) -> None:
        self._write(codec.cmd_multiple_inventory(self.rounds, header=self.header, end=self.end))

    def _restart_inventory(self) -> None:
        """Silence: probe with *stop* (always acknowledged) and start a new inventory."""
        self._state = "restarting"
        try:
            self._transact(codec.cmd_stop(header=self.header, end=self.end), Command.STOP_INVENTORY)
        except _NoAnswer:
            self._probe_failures += 1
            self._last_error = "reader does not answer"
            self._warn("silent", "reader %s does not answer (%d)", self.url, self._probe_failures)
            if self._probe_failures >= self.max_probe_failures:
                raise
            self._last_frame_at = self.clock()
            self._state = "connected"
            return
        self._probe_failures = 0
        self._start_inventory()
        self._inventory_restarts += 1
        self._last_frame_at = self.clock()
        self._state = "connected"

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            raise serial.SerialException("port closed")
        port.write(data)

    def _read_chunk(self, coalesce_s: float = 0.0) -> bytes:
        """Wait up to the read timeout for a byte, then take whatever else is already there.

        With `coalesce_s`, the rest of the burst and the notices behind it are given that long
        to arrive first (the inventory stream; command answers are read at once).
        """
        port = self._port
        if port is None:
            raise serial.SerialException("port closed")
        data: bytes = port.read(1)
        self._reads += 1
        if data:
            if coalesce_s > 0:
                self._sleep(coalesce_s)
            # A tty reports the exact count; socket:// only says "some" (1), so loop until dry.
            waiting = port.in_waiting
            while waiting and len(data) < MAX_CHUNK_BYTES:
                data += port.read(min(waiting, MAX_CHUNK_BYTES - len(data)))
                self._reads += 1
                waiting = port.in_waiting
        return data

    def _feed(self, data: bytes, now: float) -> list[Frame]:
        with self._lock:
            if data:
                self._last_data_at = now
                frames = self._decoder.feed(data)
            elif self._decoder.pending and now - (self._last_data_at or now) >= self.idle_flush_s:
                frames = self._decoder.flush()
            else:
                frames = []
        if frames:
            self._last_frame_at = now
        return frames

    def _step(self) -> None:
        if self._reconfigure.is_set():
            self._reconfigure.clear()
            self._configure()  # stops the running inventory first
            self._start_inventory()
            self._last_frame_at = self.clock()
        data = self._read_chunk(self.coalesce_s)
        now = self.clock()
        for frame in self._feed(data, now):
            self._dispatch(frame, now)
        if now - (self._last_frame_at or now) >= self.restart_after_s:
            self._restart_inventory()

    def _transact(self, command: bytes, expect: int) -> Frame | ErrorResponse:
        """Send a command and wait for its answer, resending it if the answer is lost on the line."""
        for attempt in range(self.command_attempts):
            result = self._transact_once(command, expect)
            if result is not None:
                return result
            if attempt + 1 < self.command_attempts:
                self._warn("retry", "reader %s: no answer to 0x%02X, resending", self.url, expect)
        raise _NoAnswer(
            f"command 0x{expect:02X} unanswered after {self.command_attempts} x {self.response_timeout} s"
        )

    def _transact_once(self, command: bytes, expect: int) -> Frame | ErrorResponse | None:
        """Send a command and wait for its answer, dispatching notices that arrive meanwhile."""
        self._write(command)
        deadline = self.clock() + self.response_timeout
        result: Frame | ErrorResponse | None = None
        while result is None:
            data = self._read_chunk()
            now = self.clock()
            for frame in self._feed(data, now):
                if result is None:
                    if frame.type == FrameType.RESPONSE and frame.command == expect:
                        result = frame
                        continue
                    if frame.type == FrameType.RESPONSE and frame.command == Command.ERROR:
                        err = _safe_error(frame)
                        # "No tag" comes from inventory rounds, never as the answer to a setting.
                        if err.code != codec.ErrorCode.NO_TAG or expect == Command.SINGLE_INVENTORY:
                            result = err
                            continue
                self._dispatch(frame, now)
            if result is None and now >= deadline:
                return None
        return result

    def _dispatch(self, frame: Frame, now: float) -> None:
        if frame.type == FrameType.NOTICE:
            try:
                notice = codec.decode_notice(frame, verify_crc=self.verify_crc)
            except FrameError as exc:
                with self._lock:
                    self._rejected_notices[exc.reason] = self._rejected_notices.get(exc.reason, 0) + 1
                return
            self._notices += 1
            self._last_notice_at = now
            callback = self._on_notice
            if callback is not None:
                try:
                    callback(notice, now)
                except Exception:
                    self._callback_errors += 1
                    if self._should_log("callback"):
                        log.exception("on_notice callback failed")
            return
        if frame.type == FrameType.RESPONSE and frame.command == Command.ERROR:
            err = _safe_error(frame)
            self._reader_errors[err.name] = self._reader_errors.get(err.name, 0) + 1
            if err.code != codec.ErrorCode.NO_TAG:
                self._warn("reader_error", "reader %s error %s (%s)", self.url, err.code_hex, err.name)
            return
        self._unexpected += 1

    # ------------------------------------------------------------------------------------
    # logging helpers

    def _should_log(self, key: str) -> bool:
        now = self.clock()
        last = self._last_log.get(key)
        if last is not None and now - last < LOG_INTERVAL_S:
            return False
        self._last_log[key] = now
        return True

    def _warn(self, key: str, msg: str, *args: object) -> None:
        if self._should_log(key):
            log.warning(msg, *args)


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(max(0.0, now - then), 3)


def _safe_error(frame: Frame) -> ErrorResponse:
    try:
        return codec.decode_error(frame)
    except FrameError:
        return ErrorResponse(-1, "malformed_error")
