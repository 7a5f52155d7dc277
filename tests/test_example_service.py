"""examples/service_summarise.py runs as a script and shows what it promises (SPEC 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "service_summarise.py"
SUMMARY = (
    "The export to CSV fails since this morning. Thanks for the report! Great, it works again."
)


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What the example prints, run in an empty folder, which it must leave empty."""
    folder = tmp_path_factory.mktemp("run")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(folder.iterdir()) == []
    return done.stdout


def test_the_service_example_prints_the_call_url_and_the_remote_summary(transcript: str) -> None:
    assert "acme serves summarise_thread at http://127.0.0.1:" in transcript
    assert "/v1/call/acme/summarise_thread\n" in transcript
    called, _ = transcript.split("after acme revokes")
    assert f'  summary: "{SUMMARY}"' in called
    assert f"  digest: {SUMMARY}" in called
    assert "summary._error" not in called


def test_the_signed_call_by_hand_returns_every_output_of_the_contract(transcript: str) -> None:
    assert "the same call by hand, signed: HTTP 200" in transcript
    assert f'{{"summary": "{SUMMARY}", "sentiment": "positive"}}' in transcript


def test_the_digest_falls_back_with_the_error_type_once_the_token_is_revoked(
    transcript: str,
) -> None:
    _, revoked = transcript.split("after acme revokes globex's token, the digest falls back:")
    assert "  summary: null" in revoked
    assert "  summary._error: type=rejected status_code=401" in revoked
    assert "  digest: The export to CSV fails since this morni... (not summarised: rejected)" in (
        revoked
    )


def test_each_organisation_sees_the_audit_records_it_takes_part_in(transcript: str) -> None:
    _, acme, globex = transcript.split("audit records visible to ")
    called = "caller=globex node=summary callee=acme/summarise_thread status=ok reason=None"
    for listing in (acme, globex):
        assert called in listing
        assert "caller=globex node=by_hand callee=acme/summarise_thread status=ok" in listing
        assert "usage: wall_s=" in listing
        assert " cpu_s=" in listing
    # The revoked token names no holder, so only the callee sees the refused call.
    refused = "caller=None node=summary callee=acme/summarise_thread status=rejected"
    assert f"{refused} reason=invalid_token latency_ms=- usage: -" in acme
    assert "status=rejected" not in globex
