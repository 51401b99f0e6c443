"""servers/fsyncs.py: a batch's fsyncs together on helper threads, each file's error in its place."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tuimail.servers.fsyncs import FsyncCrew, fsync_files


def _files(tmp_path: Path, count: int, prefix: str = "f") -> list[int]:
    fds = []
    for n in range(count):
        fd = os.open(tmp_path / f"{prefix}{n}", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x" * 100)
        fds.append(fd)
    return fds


@pytest.mark.parametrize("count", [0, 1, 2, 8, 30])
def test_every_file_synced_once_with_its_result_in_order(tmp_path, count):
    fds = _files(tmp_path, count)
    seen: list[int] = []
    lock = threading.Lock()

    def fsync(fd: int) -> OSError | None:
        os.fsync(fd)
        with lock:
            seen.append(fd)
        return None

    try:
        assert FsyncCrew(helpers=3, fsync=fsync).fsync_all(fds) == [None] * count
        assert sorted(seen) == sorted(fds)  # each file once, every one done before the call returns
    finally:
        for fd in fds:
            os.close(fd)


def test_a_failed_fsync_is_that_files_error(tmp_path):
    fds = _files(tmp_path, 6)
    closed = fds[1:6:2]
    for fd in closed:
        os.close(fd)
    try:
        errors = fsync_files(fds)
        for fd, error in zip(fds, errors):
            if fd in closed:
                assert isinstance(error, OSError)
            else:
                assert error is None
    finally:
        for fd in fds:
            if fd not in closed:
                os.close(fd)


def test_a_helper_that_raises_fails_the_whole_call():
    """Not an fsync's OSError (which is the file's): the caller must not report any file as synced."""
    main = threading.current_thread()
    helper_holds_one = threading.Event()

    def fsync(fd: int) -> OSError | None:
        if threading.current_thread() is not main:
            helper_holds_one.set()
            raise RuntimeError("broken helper")
        assert helper_holds_one.wait(10)  # the caller's first file waits until the helper took one
        return None

    with pytest.raises(RuntimeError, match="broken helper"):
        FsyncCrew(helpers=1, fsync=fsync).fsync_all([10, 11, 12])


def test_batches_from_several_threads_at_once(tmp_path):
    """Committers of several loops share the crew: no batch waits for another's helpers forever."""
    results: dict[int, list] = {}

    def committer(n: int) -> None:
        fds = _files(tmp_path, 5, prefix=f"t{n}-")
        try:
            results[n] = fsync_files(fds)
        finally:
            for fd in fds:
                os.close(fd)

    threads = [threading.Thread(target=committer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: [None] * 5 for n in range(6)}


def test_run_all_runs_each_task_once_and_gives_each_result_in_its_place():
    done: list[int] = []
    lock = threading.Lock()

    def task(n: int):
        with lock:
            done.append(n)
        return OSError(5, f"task {n}") if n % 3 == 0 else None

    results = FsyncCrew(helpers=3).run_all([lambda n=n: task(n) for n in range(10)])
    assert sorted(done) == list(range(10))
    assert [r is not None and r.strerror == f"task {n}" for n, r in enumerate(results)] == [n % 3 == 0 for n in range(10)]
