"""No credential reaches the terminal (verifier.redact), and what both command lines print is fit to print."""

from __future__ import annotations

import pytest

from splitproof.setup.cluster.runner import CommandFailed, Result
from splitproof.verifier.cliexit import error_text
from splitproof.verifier.redact import redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(("text", "secret"), [
    (f"401 Unauthorized (Authorization: Bearer {JWT})", JWT),
    ("reason: Rejected (authorization=Basic dXNlcjpwYXNzd29yZA==)", "dXNlcjpwYXNzd29yZA=="),
    ('echoed headers {"Authorization": "Bearer s3cr3t-t0ken"}', "s3cr3t-t0ken"),
    ("proxy said: bearer abc.DEF-123_x", "abc.DEF-123_x"),
    (f"token in the body: {JWT}", JWT),
    ("gcloud: ya29.a0AfH6SMBx3kLmNoPq", "ya29.a0AfH6SMBx3kLmNoPq"),
    ("users:\n- name: x\n  user:\n    token: abcdef123456", "abcdef123456"),
    ("client-key-data: LS0tLS1CRUdJTiBSU0E=", "LS0tLS1CRUdJTiBSU0E="),
    ("GET http://admin:hunter2@10.0.0.1/api failed", "hunter2"),
    ("password=hunter2&user=x", "hunter2"),
])
def test_credentials_are_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "<redacted>" in out


@pytest.mark.parametrize("text", [
    "VirtualService recommendationservice: weight of 'canary' must be an integer, got 'twenty'",
    "error: the server doesn't have a resource type \"virtualservices\"",
    "404 Not Found",
])
def test_ordinary_messages_are_untouched(text: str) -> None:
    assert redact(text) == text


def test_kubectl_stderr_in_a_failure_is_redacted() -> None:
    result = Result(("kubectl", "get", "vs"), 1, "", f"error: Unauthorized: Authorization: Bearer {JWT}\n")
    message = str(CommandFailed(result, "reading the VirtualService"))
    assert JWT not in message and "Unauthorized" in message and "kubectl get vs" in message


def test_error_text_escapes_raw_bytes_and_bounds_length() -> None:
    assert error_text("got \x00\x00\x12\x04 from the server") == "got \\x00\\x00\\x12\\x04 from the server"
    assert error_text("step failed\n  resume with: x") == "step failed\n  resume with: x"  # lines kept
    assert len(error_text("x" * 10_000)) == 2000
    assert JWT not in error_text(f"Bearer {JWT}")
