"""Every prompt run, on disk as it streams: SQLite (WAL) in the user's data dir.

Schema: `runs` holds one row per run (prompt, parameters, backend, model, node, GPUs, timings,
state, and the full text once the run ended); `chunks` holds the text of a run still streaming,
one row per chunk (O(1) per chunk, no rewriting of a growing text). When a run ends its chunks are
folded into `runs.text`. Each run records the process that runs it (pid and start time): when a
store is opened, runs still open whose process is gone (killed, SSH session lost) turn
`interrupted`, with everything that arrived folded into their text.

Writes go through one writer thread per store: `record()` queues and returns a Future that
resolves once the write is committed. The writer commits everything queued at once (one small
transaction per batch), so many concurrent streams cost one commit per batch, and an asyncio loop
never blocks on the disk (`await asyncio.wrap_future(fut)`). Readers use their own connections.
"""

from __future__ import annotations

import functools
import json
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from raytui import locations
from raytui.errors import RaytuiError
from raytui.model.prompts import (
    Chunk,
    Done,
    Event,
    Failed,
    FailureKind,
    PromptRequest,
    RunRecord,
    RunState,
    Started,
    Waiting,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    prompt TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    node_id TEXT, node_ip TEXT, hostname TEXT, gpu_ids TEXT NOT NULL DEFAULT '[]',
    started_at REAL, finished_at REAL,
    ttft_s REAL, tokens_per_s REAL, eval_count INTEGER,
    done_reason TEXT, error TEXT,
    owner_pid INTEGER, owner_started REAL
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS chunks (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


def default_path() -> Path:
    return locations.data_dir() / "history.sqlite3"


def _process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when there is none."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None


@functools.cache
def _process_identity(pid: int) -> tuple[int, float | None]:
    return pid, _process_started(pid)


def _this_process() -> tuple[int, float | None]:
    """(pid, start time) of the calling process, looked up once per pid (forks get their own)."""
    return _process_identity(os.getpid())


def _owner_alive(pid: int | None, started: float | None) -> bool:
    """Whether the process that wrote a run still runs (a reused pid has another start time)."""
    if pid is None:
        return False  # written before runs recorded their process
    try:
        now = _process_started(pid)
    except psutil.Error:  # not ours to look at: assume it is still at work
        return True
    return now is not None and (started is None or abs(now - started) < 1.0)


def _migrate(conn: sqlite3.Connection) -> None:
    """Columns added since the first schema."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for column, kind in (("owner_pid", "INTEGER"), ("owner_started", "REAL")):
        if column not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")


def _mark_interrupted(conn: sqlite3.Connection) -> None:
    """Open runs whose process is gone become `interrupted`; their chunks fold into the text."""
    open_states = [str(s) for s in RunState if not s.final]
    conn.execute("BEGIN IMMEDIATE")  # one store at a time: two opening at once see the same rows
    try:
        rows = conn.execute(
            "SELECT run_id, owner_pid, owner_started, state FROM runs WHERE state IN (?, ?, ?)",
            open_states,
        ).fetchall()
        for run_id, pid, started, state in rows:
            if _owner_alive(pid, started):
                continue
            chunks = conn.execute(
                "SELECT text FROM chunks WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            conn.execute(
                "UPDATE runs SET state = ?, text = text || ?, error = ? WHERE run_id = ?",
                (
                    str(RunState.INTERRUPTED),
                    "".join(r[0] for r in chunks),
                    f"the process running it ended while it was {state}",
                    run_id,
                ),
            )
            conn.execute("DELETE FROM chunks WHERE run_id = ?", (run_id,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _make_private(path: Path) -> None:
    """Prompts and answers are the user's: the database is 0600 before SQLite opens it (SQLite
    creates its -wal and -shm files with the database's mode), older files are tightened."""
    os.close(locations.open_private(path, os.O_RDWR))
    for suffix in ("-wal", "-shm", "-journal"):
        locations.tighten(path.with_name(path.name + suffix), locations.PRIVATE_FILE)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.text_factory = _text  # text that is not UTF-8 reads with U+FFFD, not an exception
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing committed
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@dataclass
class _Op:
    fn: Callable[[sqlite3.Connection], None]
    future: Future[None]


class HistoryStore:
    """The history database. Thread-safe; `close()` flushes and stops the writer."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.unreadable: list[str] = []  # rows the last list() skipped, and why
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=locations.PRIVATE_DIR)
            _make_private(self.path)
            conn = _connect(self.path)
            try:
                conn.executescript(SCHEMA)
                _migrate(conn)
                _mark_interrupted(conn)
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(self.path, exc) from exc
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- writing -----------------------------------------------------------------------------

    def create(
        self, run_id: str, request: PromptRequest, created_at: float | None = None
    ) -> Future[None]:
        at = time.time() if created_at is None else created_at

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR REPLACE INTO runs (run_id, created_at, prompt, backend, model, params,"
                " state, owner_pid, owner_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    at,
                    request.prompt,
                    request.backend,
                    request.model,
                    json.dumps(request.params()),
                    str(RunState.WAITING),
                    *_this_process(),
                ),
            )

        return self._submit(op)

    def record(self, run_id: str, event: Event) -> Future[None]:
        """Queue the effect of one event on a run; the Future resolves once committed."""
        if isinstance(event, Chunk):
            seq = self._seq.get(run_id, 0)
            self._seq[run_id] = seq + 1
            return self._submit(lambda c: self._chunk(c, run_id, seq, event.text))
        if isinstance(event, Started):
            return self._submit(lambda c: self._started(c, run_id, event))
        if isinstance(event, Done | Failed):
            self._seq.pop(run_id, None)
            return self._submit(lambda c: self._final(c, run_id, event))
        if isinstance(event, Waiting):
            done: Future[None] = Future()
            done.set_result(None)
            return done
        raise TypeError(f"not a run event: {event!r}")

    def flush(self, timeout: float | None = 10.0) -> None:
        """Block until everything queued so far is committed."""
        self._submit(lambda c: None).result(timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=10.0)

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, fn: Callable[[sqlite3.Connection], None]) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("history store is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="raytui-history", daemon=True
                )
                self._writer.start()
            self._queue.put(_Op(fn, future))
        return future

    def _write_loop(self) -> None:
        conn = _connect(self.path)
        try:
            while True:
                op = self._queue.get()
                if op is None:
                    return
                batch = [op]
                stop = False
                while True:  # take whatever else is queued: one transaction for all of it
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[_Op]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                op.fn(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for op in batch:
                op.future.set_exception(exc)
            return
        for op in batch:
            op.future.set_result(None)

    @staticmethod
    def _chunk(c: sqlite3.Connection, run_id: str, seq: int, text: str) -> None:
        c.execute("INSERT INTO chunks (run_id, seq, text) VALUES (?, ?, ?)", (run_id, seq, text))
        c.execute(
            "UPDATE runs SET state = ? WHERE run_id = ? AND state != ?",
            (str(RunState.STREAMING), run_id, str(RunState.STREAMING)),
        )

    @staticmethod
    def _started(c: sqlite3.Connection, run_id: str, ev: Started) -> None:
        c.execute(
            "UPDATE runs SET state = ?, node_id = ?, node_ip = ?, hostname = ?, gpu_ids = ?,"
            " started_at = ? WHERE run_id = ?",
            (
                str(RunState.LOADING),
                ev.node_id,
                ev.node_ip,
                ev.hostname,
                json.dumps(list(ev.gpu_ids)),
                time.time(),
                run_id,
            ),
        )

    @staticmethod
    def _final(c: sqlite3.Connection, run_id: str, ev: Done | Failed) -> None:
        rows = c.execute(
            "SELECT text FROM chunks WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        text = "".join(r[0] for r in rows)
        if isinstance(ev, Done):
            t = ev.timings
            c.execute(
                "UPDATE runs SET state = ?, text = text || ?, finished_at = ?, ttft_s = ?,"
                " tokens_per_s = ?, eval_count = ?, done_reason = ? WHERE run_id = ?",
                (
                    str(RunState.DONE),
                    text,
                    time.time(),
                    t.ttft_s,
                    t.tokens_per_s,
                    t.eval_count,
                    ev.done_reason,
                    run_id,
                ),
            )
        else:
            state = RunState.CANCELLED if ev.kind == FailureKind.CANCELLED else RunState.FAILED
            c.execute(
                "UPDATE runs SET state = ?, text = text || ?, finished_at = ?, error = ?"
                " WHERE run_id = ?",
                (str(state), text, time.time(), ev.error, run_id),
            )
        c.execute("DELETE FROM chunks WHERE run_id = ?", (run_id,))

    # -- reading -----------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord | None:
        try:
            with _reader(self.path) as c:
                row = c.execute(f"{_SELECT} WHERE r.run_id = ?", (run_id,)).fetchone()
        except sqlite3.Error as exc:
            raise HistoryError(self.path, exc) from exc
        if not row:
            return None
        try:
            return _to_record(row)
        except BadRow as exc:
            raise HistoryError(self.path, exc) from exc

    def list(self, limit: int = 20, search: str | None = None) -> list[RunRecord]:
        """Newest first. `search` matches prompt or answer text (case-insensitive substring).

        A row raytui cannot read (an unknown state, parameters that are not JSON: written by
        another version or by hand) is skipped; `self.unreadable` says which and why."""
        sql = _SELECT
        args: list[Any] = []
        if search:
            sql += (
                " WHERE instr(lower(r.prompt), lower(?)) > 0"
                f" OR instr(lower({_TEXT}), lower(?)) > 0"
            )
            args += [search, search]
        sql += " ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?"
        args.append(min(limit, MAX_LIMIT))
        try:
            with _reader(self.path) as c:
                rows = c.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise HistoryError(self.path, exc) from exc
        records: list[RunRecord] = []
        skipped: list[str] = []
        for row in rows:
            try:
                records.append(_to_record(row))
            except BadRow as exc:
                skipped.append(str(exc))
        self.unreadable = skipped
        return records


MAX_LIMIT = 1_000_000


class HistoryError(RaytuiError):
    """The history database cannot be opened or read (not SQLite, damaged, a directory)."""

    def __init__(self, path: Path, exc: BaseException) -> None:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        super().__init__(
            f"{path}: cannot use the history database ({why or type(exc).__name__}); "
            "move it away and raytui starts a new one"
        )


class BadRow(ValueError):
    """A row of `runs` raytui cannot read; str() names the run and the column."""


_TEXT = (
    "r.text || coalesce((SELECT group_concat(text, '') FROM"
    " (SELECT text FROM chunks k WHERE k.run_id = r.run_id ORDER BY seq)), '')"
)
_SELECT = (
    "SELECT r.run_id, r.created_at, r.prompt, r.backend, r.model, r.params, r.state, "
    + _TEXT
    + ", r.node_id, r.node_ip, r.hostname, r.gpu_ids, r.started_at, r.finished_at, r.ttft_s,"
    " r.tokens_per_s, r.eval_count, r.done_reason, r.error FROM runs r"
)


class _reader:
    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _to_record(row: tuple[Any, ...]) -> RunRecord:
    """A row checked column by column (SQLite stores any type in any column): BadRow if not."""
    run_id = row[0] if isinstance(row[0], str) else repr(row[0])

    def bad(column: str, value: object) -> BadRow:
        return BadRow(f"run {run_id[:40]!r}: {column} {str(value)[:40]!r} is not readable")

    def text(i: int, column: str, optional: bool = False) -> Any:
        if row[i] is None and optional:
            return None
        if not isinstance(row[i], str):
            raise bad(column, row[i])
        return row[i]

    def number(i: int, column: str, optional: bool = True) -> Any:
        value = row[i]
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(column, value)
        if not math.isfinite(value) or abs(value) > _MAX_NUMBER:
            raise bad(column, value)
        return value

    try:
        state = RunState(row[6])
    except ValueError:
        raise bad("state", row[6]) from None
    try:
        params = json.loads(text(5, "params"))
        gpu_ids = json.loads(text(11, "gpu_ids", optional=True) or "[]")
    except (ValueError, RecursionError):
        raise bad("params or gpu_ids", row[5]) from None
    if not isinstance(params, dict):
        raise bad("params", row[5])
    if not isinstance(gpu_ids, list) or not all(isinstance(g, str) for g in gpu_ids):
        raise bad("gpu_ids", row[11])
    created_at = number(1, "created_at", optional=False)
    if not 0 <= created_at < _YEAR_3000:
        raise bad("created_at", created_at)
    eval_count = number(16, "eval_count")
    return RunRecord(
        run_id=text(0, "run_id"),
        created_at=float(created_at),
        prompt=text(2, "prompt"),
        backend=text(3, "backend"),
        model=text(4, "model"),
        params=params,
        state=state,
        text=text(7, "text"),
        node_id=text(8, "node_id", optional=True),
        node_ip=text(9, "node_ip", optional=True),
        hostname=text(10, "hostname", optional=True),
        gpu_ids=tuple(gpu_ids),
        started_at=number(12, "started_at"),
        finished_at=number(13, "finished_at"),
        ttft_s=number(14, "ttft_s"),
        tokens_per_s=number(15, "tokens_per_s"),
        eval_count=None if eval_count is None else int(eval_count),
        done_reason=text(17, "done_reason", optional=True),
        error=text(18, "error", optional=True),
    )


_MAX_NUMBER = 1e15
_YEAR_3000 = 32_503_680_000.0
