"""SCRAM-SHA-256 sans I/O (core/scram.py) and the directory's verifiers: RFC 5803 text, verifiers made
whenever a password is set and at the first plaintext login of an older account, proofs judged by
the directory, no user enumeration in the server-first message."""

from __future__ import annotations

import dataclasses
import json

import pytest
from scramp import ScramClient

from tests.helpers import PASSWORD, make_config
from tuimail.core import scram
from tuimail.core.directory import AuthOutcome, Directory, Service


def run(exchange: scram.Exchange, user: str, password: str) -> tuple[scram.Proof, ScramClient]:
    client = ScramClient([scram.MECHANISM], user, password)
    client.set_server_first(exchange.first(client.get_client_first()))
    return exchange.final(client.get_client_final()), client


def test_verifier_is_rfc5803_text_and_round_trips() -> None:
    text = scram.make_verifier(PASSWORD)
    assert text.startswith("SCRAM-SHA-256$4096:") and PASSWORD not in text
    verifier = scram.Verifier.parse(text)
    assert verifier is not None and str(verifier) == text and PASSWORD not in repr(verifier)
    for junk in ("", "$argon2id$v=19$...", "SCRAM-SHA-256$100:AAAA$AAAA:AAAA", text.replace("$", ":"), text + "!"):
        assert scram.Verifier.parse(junk) is None


def test_proof_success_wrong_password_and_server_signature() -> None:
    text = scram.make_verifier(PASSWORD)
    proof, client = run(scram.Exchange(lambda u: text if u == "bob" else None), "bob", PASSWORD)
    assert proof.valid and proof.verifier == text and PASSWORD not in repr(proof)
    client.set_server_final(proof.server_final)  # raises when the signature is wrong
    proof, _ = run(scram.Exchange(lambda u: text), "bob", "Wrong1234")
    assert not proof.valid and proof.server_final == ""


def test_unknown_user_gets_a_stable_normal_looking_salt() -> None:
    def salt_of(user: str) -> str:
        first = scram.Exchange(lambda u: None).first(f"n,,n={user},r=abcdefgh")
        return dict(item.split("=", 1) for item in first.split(","))["s"]

    assert salt_of("ghost") == salt_of("ghost") != salt_of("other")
    proof, _ = run(scram.Exchange(lambda u: None), "ghost", PASSWORD)
    assert not proof.valid and proof.verifier == ""


@pytest.mark.parametrize("message, why", [
    ("", "empty client-first"),
    ("p=tls-unique,,n=bob,r=abc", "channel binding is not supported"),
    ("x,,n=bob,r=abc", "gs2 flag"),
    ("n,,r=abc", "malformed client-first"),
    ("n,a=alice,n=bob,r=abc", "acting as another user"),
])
def test_malformed_client_first(message, why) -> None:
    with pytest.raises(scram.ScramError, match=why):
        scram.Exchange(lambda u: scram.make_verifier(PASSWORD)).first(message)


def test_authzid_naming_the_user_itself_is_accepted() -> None:
    """Cyrus SASL (mbsync) sends `n,a=bob,n=bob,...`: c= then carries that header."""
    text = scram.make_verifier(PASSWORD)
    exchange = scram.Exchange(lambda u: text)
    client = ScramClient([scram.MECHANISM], "bob", PASSWORD)
    first = client.get_client_first().replace("n,,", "n,a=bob,", 1)
    client.gs2_header = scram._SentHeader(b"n,a=bob,")  # the client signs c= of the header it sent
    client.set_server_first(exchange.first(first))
    final = client.get_client_final()
    assert final.startswith("c=bixhPWJvYiw=,")  # base64("n,a=bob,")
    proof = exchange.final(final)
    assert proof.valid
    client.set_server_final(proof.server_final)


def test_decode_refuses_bad_base64() -> None:
    assert scram.decode(scram.encode("n,,n=bob,r=x")) == "n,,n=bob,r=x"
    with pytest.raises(scram.ScramError, match="base64"):
        scram.decode(b"!!!")


@pytest.fixture
def directory(tmp_path):
    d = Directory(make_config(tmp_path))
    d.add_account("bob@lab.test", PASSWORD)
    return d


def test_setting_a_password_makes_a_verifier(directory) -> None:
    first = directory.get("bob@lab.test").scram
    assert scram.Verifier.parse(first) is not None
    directory.update_account("bob@lab.test", password="Other1234x")
    assert directory.get("bob@lab.test").scram not in ("", first)
    directory.update_account("bob@lab.test", full_name="Bob")  # no password: the verifier stays
    assert directory.scram_verifier("bob") == directory.get("bob@lab.test").scram


def test_directory_judges_proofs(directory) -> None:
    exchange = scram.Exchange(directory.scram_verifier)
    proof, _ = run(exchange, "bob", PASSWORD)
    assert directory.authenticate("bob", proof, Service.IMAP)[0] is AuthOutcome.OK
    proof, _ = run(scram.Exchange(directory.scram_verifier), "bob", "Wrong1234")
    assert directory.authenticate("bob", proof, Service.IMAP)[0] is AuthOutcome.PASSWORD_MISMATCH
    proof, _ = run(scram.Exchange(directory.scram_verifier), "nobody", PASSWORD)
    assert directory.authenticate("nobody", proof, Service.IMAP)[0] is AuthOutcome.USER_UNKNOWN
    # the password changed between server-first and the proof: the old verifier no longer counts
    proof, _ = run(scram.Exchange(directory.scram_verifier), "bob", PASSWORD)
    directory.update_account("bob@lab.test", password=PASSWORD)
    assert directory.authenticate("bob", proof, Service.IMAP)[0] is AuthOutcome.PASSWORD_MISMATCH
    directory.update_account("bob@lab.test", imap=False)
    proof, _ = run(scram.Exchange(directory.scram_verifier), "bob", PASSWORD)
    assert directory.authenticate("bob", proof, Service.IMAP)[0] is AuthOutcome.ACCESS_DISABLED


def test_older_account_gets_its_verifier_at_the_first_plaintext_login(directory) -> None:
    path = directory.accounts_path
    data = json.loads(path.read_text())
    del data["accounts"][0]["scram"]  # as an older tuimail wrote it
    path.write_text(json.dumps(data))
    directory.refresh(force=True)
    assert directory.scram_verifier("bob") is None
    proof, _ = run(scram.Exchange(directory.scram_verifier), "bob", PASSWORD)
    assert directory.authenticate("bob", proof, Service.POP3)[0] is AuthOutcome.NO_VERIFIER
    assert directory.authenticate("bob", "Wrong1234", Service.POP3)[0] is AuthOutcome.PASSWORD_MISMATCH
    assert directory.scram_verifier("bob") is None  # a wrong password makes nothing
    assert directory.authenticate("bob", PASSWORD, Service.POP3)[0] is AuthOutcome.OK
    text = path.read_text()
    assert "SCRAM-SHA-256$4096:" in text and PASSWORD not in text
    proof, _ = run(scram.Exchange(directory.scram_verifier), "bob", PASSWORD)
    assert directory.authenticate("bob", proof, Service.POP3)[0] is AuthOutcome.OK


def test_roster_accounts_carry_verifiers(directory) -> None:
    account = dataclasses.replace(directory.get("bob@lab.test"), address="ann@lab.test",
                                  scram=scram.make_verifier(PASSWORD))
    directory.add_accounts([account])
    proof, _ = run(scram.Exchange(directory.scram_verifier), "ann", PASSWORD)
    assert directory.authenticate("ann", proof, Service.SMTP)[0] is AuthOutcome.OK
