"""Dovecot's imaptest compliance suite against the server, when imaptest is built.

`shared/peers/build-imaptest` builds it offline into `$IMAPTEST_DIR` (default `${TMPDIR:-/tmp}/imaptest`);
`TUIMAIL_IMAPTEST=/path/to/imaptest` (the binary or its directory) points elsewhere. Every group must pass: Dovecot 2.3 fails none of
the 71, and neither may we. Without the binary the test is skipped and says how to build it.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import PASSWORD


def _imaptest() -> Path | None:
    explicit = os.environ.get("TUIMAIL_IMAPTEST")
    if explicit:  # the binary, or the directory it was built in
        path = Path(explicit)
        return path / "imaptest" if path.is_dir() else path
    root = Path(os.environ.get("IMAPTEST_DIR") or Path(tempfile.gettempdir()) / "imaptest")
    return root / "imaptest"


IMAPTEST = _imaptest()
SUMMARY = re.compile(rb"(\d+) test groups: (\d+) failed.*?base protocol: (\d+)/(\d+) individual commands failed"
                     rb".*?extensions: (\d+)/(\d+) individual commands failed", re.DOTALL)


@pytest.mark.skipif(IMAPTEST is None or not IMAPTEST.is_file() or not (IMAPTEST.parent / "tests").is_dir(),
                    reason="imaptest is not built (run shared/peers/build-imaptest, or set TUIMAIL_IMAPTEST)")
def test_imaptest_compliance_has_no_failure(server):
    done = subprocess.run(
        [str(IMAPTEST), "host=127.0.0.1", f"port={server.ports.imap}", "user=tatareva@lab.test",
         f"pass={PASSWORD}", f"test={IMAPTEST.parent / 'tests'}"],
        capture_output=True, timeout=600,
    )
    out = done.stdout + done.stderr
    match = SUMMARY.search(out)
    assert match, out[-2000:].decode("utf-8", "replace")
    groups, failed_groups, base_failed, _, ext_failed, _ = (int(g) for g in match.groups())
    report = out.decode("utf-8", "replace")[-4000:]
    assert int(groups) >= 71, report
    assert (failed_groups, base_failed, ext_failed) == (0, 0, 0), report
    assert b"Keyword used without being in FLAGS" not in out, report
