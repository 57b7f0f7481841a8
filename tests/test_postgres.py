"""The review store and the mask versions against a real PostgreSQL server, started here (initdb
and pg_ctl in a temporary folder, on 127.0.0.1 and a free port): the schema created on first use,
two processes writing at once lose nothing, two savers of one image get unique numbers (the loser
StaleVersion), and a server restart while a store is open gives one clear line, then works again,
with no decision lost. Skipped, saying why, without PostgreSQL's binaries or the psycopg driver
(``./test.sh`` installs both when it can: Debian's postgresql, ``pip install -e .[postgres]``)."""
from __future__ import annotations

import glob
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from seglib.review import ReviewStore, ReviewStoreError
from seglib.review.versions import MaskVersions, StaleVersion

PASSWORD = "s3cret-pw"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A throwaway PostgreSQL cluster; PostgreSQL refuses to run as root, so as root it runs as
    the ``postgres`` user (the folder is handed to it)."""

    def __init__(self, bindir: Path):
        self.bindir, self.port = bindir, _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="seglib-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "log.txt"
        self.as_user = None
        if os.geteuid() == 0:
            self.as_user = "postgres"
            shutil.chown(self.dir, self.as_user)
            os.chmod(self.dir, 0o700)

    def _run(self, *args, check=True):
        cmd = [str(self.bindir / args[0]), *map(str, args[1:])]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)

    def init(self) -> None:
        pw = self.dir / "pw"
        pw.write_text(PASSWORD)
        if self.as_user:
            shutil.chown(pw, self.as_user)
        self._run("initdb", "-D", self.data, "-U", "seglib", "--auth=scram-sha-256", f"--pwfile={pw}", "-E", "UTF8")

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.dir}", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://seglib:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (looked in /usr/lib/postgresql/*/bin and on PATH); "
                    "install Debian's postgresql (./test.sh does as root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("no psycopg driver: pip install -e .[postgres]")
    server = Server(bindir)
    try:
        server.init()
        server.start()
    except (subprocess.CalledProcessError, OSError) as e:
        log = server.log.read_text()[-500:] if server.log.exists() else ""
        server.cleanup()
        detail = getattr(e, "stderr", "") or str(e)
        pytest.skip(f"PostgreSQL could not start here: {detail.strip()[-300:]} {log}")
    yield server
    server.cleanup()


_counter = iter(range(10**6))


@pytest.fixture
def pg_url(pg_server):
    """A fresh database on the server for each test (the schema is the store's to create)."""
    import sqlalchemy as sa

    name = f"t{os.getpid()}_{next(_counter)}"
    admin = sa.create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return pg_server.url.rsplit("/", 1)[0] + "/" + name


def test_schema_is_created_on_first_use(pg_url):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    assert not sa.inspect(engine).get_table_names()
    store = ReviewStore(pg_url)
    assert {"review_events", "mask_versions"} <= set(sa.inspect(engine).get_table_names())
    store.flag("ds", ["a", "b"], reason="odd", detector="mask_hash", score=0.5)
    store.set_state("ds", ["a"], "exclude", note="alien")
    assert ReviewStore(pg_url).states("ds") == {"a": "exclude", "b": "flagged"}  # a second store: tables kept
    assert store.undo("ds", "a") and store.states("ds") == {"a": "flagged", "b": "flagged"}
    engine.dispose()
    store.close()


def _writer(url: str, who: str, n: int, barrier) -> None:
    store = ReviewStore(url)
    barrier.wait()
    for i in range(n):
        image = f"{who}-{i:03d}"
        store.flag("ds", [image], reason=f"r{i}", detector="d", score=i / n, who=who)
        store.set_state("ds", [image], ("keep", "exclude", "relabel")[i % 3], note=who, who=who)
    store.close()


def test_two_processes_flagging_and_deciding_at_once_lose_nothing(pg_url):
    ReviewStore(pg_url).close()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    n = 200
    procs = [ctx.Process(target=_writer, args=(pg_url, who, n, barrier)) for who in ("ana", "bo")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    store = ReviewStore(pg_url)
    history = store.history("ds")
    assert len(history) == 2 * 2 * n  # every event of both writers
    assert history["who"].value_counts().to_dict() == {"ana": 2 * n, "bo": 2 * n}
    counts = store.counts("ds")
    assert counts["flagged"] == 0 and sum(counts.values()) == 2 * n
    assert counts["keep"] == 2 * len(range(0, n, 3))
    store.close()


def _saver(url: str, n: int, barrier, out) -> None:
    versions = MaskVersions(ReviewStore(url))
    mask = np.zeros((8, 8), np.uint8)
    barrier.wait()
    stale_first = 0
    try:
        versions.save("ds", "img", mask, tool=f"p{os.getpid()}", expected=0)
    except StaleVersion:
        stale_first = 1
    saved, stale = 0, 0
    while saved < n:
        latest = versions.latest_number("ds", "img")
        try:
            versions.save("ds", "img", mask + saved % 3, tool=f"p{os.getpid()}", expected=latest)
            saved += 1
        except StaleVersion:
            stale += 1
    out.put((stale_first, saved, stale))
    versions.store.close()


def test_two_processes_saving_versions_of_one_image(pg_url):
    ReviewStore(pg_url).close()
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    n = 60
    procs = [ctx.Process(target=_saver, args=(pg_url, n, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(r[0] for r in results) == [0, 1]  # both started from version 0: exactly one lost
    history = MaskVersions(ReviewStore(pg_url)).history("ds", "img")
    numbers = [v.number for v in history]
    assert sorted(numbers) == list(range(1, 1 + 1 + 2 * n))  # unique, no gap: nothing lost
    assert len(numbers) == 1 + sum(r[1] for r in results)


def test_server_restart_gives_one_line_then_works_and_loses_nothing(pg_server, pg_url):
    store = ReviewStore(pg_url)
    store.flag("ds", [f"i{k}" for k in range(10)], reason="before")
    store.set_state("ds", ["i0", "i1"], "exclude")
    pg_server.stop()
    try:
        with pytest.raises(ReviewStoreError) as e:
            store.set_state("ds", ["i2"], "keep")
        msg = str(e.value)
        assert "\n" not in msg and PASSWORD not in msg and f"127.0.0.1:{pg_server.port}" in msg
        with pytest.raises(ReviewStoreError):
            ReviewStore(pg_url)  # opening a store on a server that is down: the same one line
    finally:
        pg_server.start()
    store.set_state("ds", ["i3"], "keep")  # the pool replaced its dead connections (pre-ping)
    states = store.states("ds")
    assert states["i0"] == states["i1"] == "exclude" and states["i3"] == "keep"
    assert states["i2"] == "flagged"  # the call made while the server was down wrote nothing, and said so
    assert len(store.history("ds")) == 10 + 2 + 1
    store.close()


def test_cli_names_the_database_in_one_line_when_it_is_down(tmp_path):
    demo = tmp_path / "d.npz"
    from seglib.data.demo import write_demo

    write_demo(demo, n=50, seed=0, n_test=0)
    url = f"postgresql+psycopg://seglib:{PASSWORD}@127.0.0.1:{_free_port()}/nothing"
    env = dict(os.environ, SEGLIB_REVIEW_DB=url)
    import sys

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "seglib", "review", "status", str(demo)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: review store postgresql+psycopg://seglib:***@")
    assert PASSWORD not in r.stderr and time.perf_counter() - t0 < 60
