"""The leader lease: at most one holder; a dead holder's lease is taken over by the next try."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lmdeck.db.lease import LeaderLease, leader_lease
from lmdeck.db.lease_file import FileLease
from lmdeck.db.lease_postgres import AdvisoryLease

#: Holds the file lease of argv[1], says so, and waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from lmdeck.db.lease_file import FileLease
lease = FileLease(Path(sys.argv[1]))
assert lease.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_two_leases_on_one_data_dir_make_exactly_one_leader(tmp_path: Path) -> None:
    first, second = (leader_lease(f"sqlite:///{tmp_path}/lmdeck.db", tmp_path) for _ in range(2))
    assert [first.try_acquire(), second.try_acquire()] == [True, False]
    assert first.try_acquire() and not second.try_acquire()  # held stays held, refused stays refused
    first.release()
    assert second.try_acquire() and not first.try_acquire()
    second.release()


def test_the_leader_process_killed_frees_the_lease_for_another(tmp_path: Path) -> None:
    path = tmp_path / "lmdeck.leader.lock"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        follower = FileLease(path)
        assert not follower.try_acquire()
        assert follower.holder() == str(holder.pid)
        holder.kill()
        holder.wait(30)
        assert eventually(follower.try_acquire)
        assert follower.holder() == str(os.getpid())
        follower.release()
    finally:
        holder.kill()
        holder.wait(30)


def test_the_lease_follows_the_store() -> None:
    assert isinstance(leader_lease("sqlite:///x/lmdeck.db", Path("x")), FileLease)
    postgres = leader_lease("postgresql://u@localhost:1/db", Path("x"))
    assert isinstance(postgres, AdvisoryLease) and isinstance(postgres, LeaderLease)
    with pytest.raises(ValueError, match="lmdeck runs on postgresql, sqlite"):
        leader_lease("mysql://localhost/db", Path("x"))


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    return url


def test_advisory_lease_has_one_holder_and_is_freed_with_its_connection(postgres_url: str) -> None:
    first = AdvisoryLease(postgres_url, f"test.lease.{os.getpid()}.{time.monotonic_ns()}")
    second = AdvisoryLease(postgres_url, first.name)
    try:
        assert [first.try_acquire(), second.try_acquire()] == [True, False]
        assert first.try_acquire()
        first.dispose()  # its connection closed: the server frees the lock
        assert eventually(second.try_acquire)
    finally:
        first.dispose()
        second.dispose()


def test_an_unreachable_store_is_no_leader() -> None:
    lease = AdvisoryLease("postgresql://nobody@127.0.0.1:1/none", "test.lease")
    assert lease.try_acquire() is False
    lease.dispose()
