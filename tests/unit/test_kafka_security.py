"""Kafka security settings: checked once when Settings is built, turned into the same aiokafka
options for every client, secrets never shown; the local broker's SASL properties."""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512

from adapters.kafka_security import client_options
from adapters.logs import configure_logging
from adapters.publisher import _faststream_security
from adapters.settings import Settings
from provisioning import kafka_sasl

REPO = Path(__file__).resolve().parents[2]
SASL = {"TUNIX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "TUNIX_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TUNIX_KAFKA_SASL_USERNAME": "gateway", "TUNIX_KAFKA_SASL_PASSWORD": "s3cret-pw"}


def test_plaintext_clients_get_no_options_at_all():
    assert client_options(Settings.from_env({})) == {}
    assert _faststream_security({}) is None


def test_sasl_ssl_gives_every_client_credentials_and_a_verifying_tls_context():
    options = client_options(Settings.from_env(SASL))
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("gateway", "s3cret-pw")
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    security = _faststream_security(options)
    assert isinstance(security, SASLScram512) and security.use_ssl and security.ssl_context is context
    assert (security.username, security.password) == ("gateway", "s3cret-pw")


def test_sasl_plaintext_and_ssl_map_to_faststream_security():
    plain = _faststream_security(client_options(Settings.from_env({
        "TUNIX_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TUNIX_KAFKA_SASL_USERNAME": "u",
        "TUNIX_KAFKA_SASL_PASSWORD": "p"})))
    assert type(plain) is SASLPlaintext and not plain.use_ssl and plain.ssl_context is None
    tls = _faststream_security(client_options(Settings.from_env({"TUNIX_KAFKA_SECURITY_PROTOCOL": "SSL"})))
    assert type(tls) is BaseSecurity and tls.use_ssl and tls.ssl_context is not None


@pytest.mark.parametrize("env, says", [
    ({"TUNIX_KAFKA_SECURITY_PROTOCOL": "TLS"}, "TUNIX_KAFKA_SECURITY_PROTOCOL must be one of"),
    ({**SASL, "TUNIX_KAFKA_SASL_MECHANISM": "GSSAPI"}, "TUNIX_KAFKA_SASL_MECHANISM must be one of"),
    ({**SASL, "TUNIX_KAFKA_SASL_PASSWORD": ""}, "needs TUNIX_KAFKA_SASL_USERNAME and TUNIX_KAFKA_SASL_PASSWORD"),
    ({"TUNIX_KAFKA_SASL_USERNAME": "u", "TUNIX_KAFKA_SASL_PASSWORD": "s3cret-pw"}, "use SASL_SSL"),
    ({"TUNIX_KAFKA_SSL_CAFILE": "/ca.pem"}, "use SSL or SASL_SSL"),
    ({"TUNIX_KAFKA_SECURITY_PROTOCOL": "SSL", "TUNIX_KAFKA_SSL_KEYFILE": "/k.pem"}, "needs TUNIX_KAFKA_SSL_CERTFILE"),
    ({"TUNIX_KAFKA_LOCAL_USERS": 'reader:a"b'}, "TUNIX_KAFKA_LOCAL_USERS: reader is not name:password"),
])
def test_contradictory_settings_are_refused_naming_the_variable_not_the_secret(env, says):
    with pytest.raises(ValueError, match=says) as refused:
        Settings.from_env(env)
    assert "s3cret-pw" not in str(refused.value) and 'a"b' not in str(refused.value)


def test_tls_files_that_do_not_load_are_refused_with_the_variable(tmp_path):
    missing = Settings.from_env({"TUNIX_KAFKA_SECURITY_PROTOCOL": "SSL", "TUNIX_KAFKA_SSL_CAFILE": str(tmp_path / "no")})
    with pytest.raises(ValueError, match="TUNIX_KAFKA_SSL_CAFILE: no readable file"):
        client_options(missing)
    (tmp_path / "ca.pem").write_text("not a certificate")
    garbage = Settings.from_env({"TUNIX_KAFKA_SECURITY_PROTOCOL": "SSL", "TUNIX_KAFKA_SSL_CAFILE": str(tmp_path / "ca.pem")})
    with pytest.raises(ValueError, match="could not be loaded"):
        client_options(garbage)


def test_secrets_are_not_in_the_settings_repr():
    shown = repr(Settings.from_env({**SASL, "TUNIX_KAFKA_SSL_KEY_PASSWORD": "key-pw",
                                    "TUNIX_KAFKA_LOCAL_USERS": "reader:reader-pw"}))
    assert "gateway" in shown  # the user name is not a secret; it helps reading logs
    assert "s3cret-pw" not in shown and "key-pw" not in shown and "reader-pw" not in shown


def test_a_process_refuses_to_start_in_one_line_without_the_secret():
    env = {"PATH": "/usr/bin:/bin", "TUNIX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "TUNIX_KAFKA_SASL_USERNAME": "projector", "TUNIX_KAFKA_SASL_MECHANISM": "MD5",
           "TUNIX_KAFKA_SASL_PASSWORD": "s3cret-pw"}
    done = subprocess.run([sys.executable, "-m", "consumers.projector"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "refused to start: TUNIX_KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, not 'MD5'"]
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_the_local_broker_asks_every_listener_for_a_password_and_denies_without_an_acl():
    settings = Settings.from_env({"TUNIX_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TUNIX_KAFKA_SASL_USERNAME": "admin",
                                  "TUNIX_KAFKA_SASL_PASSWORD": "admin-pw", "TUNIX_KAFKA_LOCAL_USERS": "gateway:gw-pw"})
    assert kafka_sasl.enabled(settings) and not kafka_sasl.enabled(Settings())
    props = kafka_sasl.server_properties(settings, 9092, 9093)
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert props["super.users"] == "User:admin" and props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    for listener in ("sasl_plaintext", "controller"):
        jaas = props[f"listener.name.{listener}.plain.sasl.jaas.config"]
        assert 'username="admin" password="admin-pw"' in jaas
        assert 'user_admin="admin-pw"' in jaas and 'user_gateway="gw-pw"' in jaas and jaas.endswith(";")


def test_the_local_broker_refuses_what_it_cannot_run():
    with pytest.raises(RuntimeError, match="point KAFKA_BOOTSTRAP_SERVERS at a broker with TLS"):
        kafka_sasl.enabled(Settings.from_env(SASL))


def test_the_services_log_handler_redacts_sasl_bytes_even_at_debug(capsys):
    configure_logging("json", "INFO")
    try:
        library = logging.getLogger("aiokafka.conn")
        library.setLevel(logging.DEBUG)  # an operator debugging the connection
        library.debug("%s Request %d: %s", "<conn>", 3,
                      r"SaslAuthenticateRequest_v1(sasl_auth_bytes=b'gateway\x00gateway\x00s3cret-pw')")
        written = capsys.readouterr().err
    finally:
        library.setLevel(logging.NOTSET)
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()  # the handler writes to capsys' stream, closed after this test
    assert "SaslAuthenticateRequest_v1(sasl_auth_bytes=<redacted>)" in written and "s3cret-pw" not in written
