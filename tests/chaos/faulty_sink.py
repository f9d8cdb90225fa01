"""``leadstream sink`` with a fault injected from outside the product code.

Run as a script (``python tests/chaos/faulty_sink.py OPTIONS``): it patches the sink's
ClickHouse calls and its consumer's offset commit, then hands over to the real
``leadstream sink`` command, so everything else is the product as shipped.

Crash points (``--crash KIND --at N``; the process ends as if killed, status 137):

* ``before``: the N-th insert is about to be sent; nothing of it reaches the engine.
* ``between``: the N-th insert that follows an acknowledged insert of the same batch
  (some tables of the batch are stored, the others not, nothing committed).
* ``during``: the N-th insert into ``contact_versions`` (the table with a materialized
  view) is killed from outside while the engine runs it: a separate ``kill -9`` fires
  ``--during-fraction`` of the way through the mean duration of the earlier such inserts.
* ``after``: every insert of the N-th batch is acknowledged, its offset commit is not sent.

``--outage-file PATH``: while PATH exists, every insert, query and command fails as if the
engine were unavailable; the first failing insert is stored and only its acknowledgement
is lost. ``--session-timeout-ms`` shortens the consumer's session so the group notices a
crashed faulty sink quickly (the crash is the subject, not the failure detection delay).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

CRASH_STATUS = 137
SINK_TABLES = ("touches", "contact_versions", "deal_versions", "identity_links", "dead_letters")


class Killer:
    """A process started in advance that sends ``kill -9`` to this one when armed.

    Separate, so it fires while the engine runs inside this process, whatever holds the
    interpreter; started early, so its own start-up is not part of the delay.
    """

    def __init__(self) -> None:
        code = ("import os, sys, time\n"
                "delay = float(sys.stdin.readline())\n"
                "time.sleep(delay)\n"
                f"os.kill({os.getpid()}, 9)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)

    def arm(self, delay: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{delay}\n".encode())
        self.proc.stdin.flush()


class Faults:
    """The injected behaviour and the counters it keys on."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.crash: str | None = args.crash
        self.at: int = args.at
        self.fraction: float = args.during_fraction
        self.outage = Path(args.outage_file) if args.outage_file else None
        self.session_timeout_ms: int | None = args.session_timeout_ms
        self.lock = threading.Lock()
        self.inserts = 0
        self.in_batch = 0  # inserts acknowledged since the last commit
        self.betweens = 0
        self.contact_inserts: list[float] = []  # durations
        self.commits = 0
        self.lost_ack = False
        self.killer = Killer() if self.crash == "during" else None

    def say(self, message: str) -> None:
        sys.stderr.write(f"faulty-sink: {message}\n")
        sys.stderr.flush()

    def die(self, message: str) -> None:
        self.say(f"crash {message}")
        os._exit(CRASH_STATUS)

    def down(self) -> bool:
        return self.outage is not None and self.outage.exists()

    def insert(self, real: Callable[..., None], db: Any, table: str, rows: Sequence[Any],
               columns: Sequence[str]) -> None:
        from ground.errors import SinkError

        if table not in SINK_TABLES:  # the migrations' bookkeeping is not the sink's work
            real(db, table, rows, columns)
            return
        with self.lock:
            self.inserts += 1
            n = self.inserts
        if self.down():
            if not self.lost_ack:
                self.lost_ack = True
                real(db, table, rows, columns)
                self.say(f"outage: insert of {len(rows)} rows into {table} stored, acknowledgement lost")
            raise SinkError("ClickHouse unavailable (injected outage)")
        if self.crash == "before" and n == self.at:
            self.die(f"before insert {n} ({len(rows)} rows into {table})")
        if self.crash == "between" and self.in_batch >= 1:
            self.betweens += 1
            if self.betweens == self.at:
                self.die(f"between inserts: {self.in_batch} table(s) of the batch stored, {table} not yet")
        if self.crash == "during" and table == "contact_versions":
            done = self.contact_inserts
            if len(done) + 1 == self.at:
                mean = sum(done) / len(done) if done else 0.02
                delay = max(0.0005, self.fraction * mean)
                self.say(f"during: insert of {len(rows)} rows into {table} started, kill -9 in {delay * 1000:.1f} ms")
                assert self.killer is not None
                self.killer.arm(delay)
                real(db, table, rows, columns)
                self.say("during: the insert returned before the kill (so this is a crash after it)")
                time.sleep(30)  # the kill arrives
                self.die("during: the external kill did not arrive")
        started = time.monotonic()
        real(db, table, rows, columns)
        if table == "contact_versions":
            self.contact_inserts.append(time.monotonic() - started)
        self.in_batch += 1

    def guarded(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(db: Any, *args: Any, **kwargs: Any) -> Any:
            from ground.errors import SinkError

            # the engine goes away at an insert (whose acknowledgement is lost), so reads
            # keep working until that insert happened
            if self.down() and self.lost_ack:
                raise SinkError("ClickHouse unavailable (injected outage)")
            return real(db, *args, **kwargs)

        return call

    def commit(self) -> None:
        self.commits += 1
        if self.crash == "after" and self.commits == self.at:
            self.die(f"after the inserts of batch {self.commits}, before its offset commit")
        self.in_batch = 0


def install(faults: Faults) -> None:
    """Patch the sink's engine client and its consumer class."""
    import confluent_kafka

    import sinks.sink
    from sinks.clickhouse import Database

    real_insert = Database.insert

    def insert(db: Database, table: str, rows: Sequence[Any], column_names: Sequence[str]) -> None:
        faults.insert(real_insert, db, table, rows, column_names)

    Database.insert = insert  # type: ignore[method-assign]
    Database.query = faults.guarded(Database.query)  # type: ignore[method-assign]
    Database.command = faults.guarded(Database.command)  # type: ignore[method-assign]

    class Consumer(confluent_kafka.Consumer):  # type: ignore[misc]
        def __init__(self, config: dict[str, Any]) -> None:
            if faults.session_timeout_ms:
                config = {**config, "session.timeout.ms": faults.session_timeout_ms,
                          "heartbeat.interval.ms": max(500, faults.session_timeout_ms // 6)}
            super().__init__(config)

        def commit(self, *args: Any, **kwargs: Any) -> Any:
            faults.commit()
            return super().commit(*args, **kwargs)

    sinks.sink.Consumer = Consumer  # type: ignore[misc]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crash", choices=("before", "between", "during", "after"))
    parser.add_argument("--at", type=int, default=1)
    parser.add_argument("--during-fraction", type=float, default=0.5)
    parser.add_argument("--outage-file")
    parser.add_argument("--session-timeout-ms", type=int)
    args = parser.parse_args(argv)
    install(Faults(args))
    from leadstream.cli import main as leadstream_main

    sys.argv = ["leadstream", "sink"]
    leadstream_main()


if __name__ == "__main__":
    main()
