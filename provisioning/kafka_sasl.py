"""The local broker with SASL/PLAIN and ACLs (TUNIX_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT).

Why it exists: to try and test the service's Kafka security settings against a real broker
without a certificate authority. Every listener, the controllers' included, then asks for a
PLAIN user name and password; the user in TUNIX_KAFKA_SASL_USERNAME (whom the whole local
stack uses) is the broker's own identity and its only super user, and the users in
TUNIX_KAFKA_LOCAL_USERS may do only what ACLs grant them (KRaft's StandardAuthorizer, no
access without an ACL). PLAIN sends passwords in the clear: this is for 127.0.0.1 only;
production brokers use SASL_SSL or mTLS (docs/operations.md, "Security model").
"""

from __future__ import annotations

import socket
import struct

from adapters.kafka_security import local_user_ok, local_users
from adapters.settings import Settings

LISTENER = "SASL_PLAINTEXT"  # the clients' listener's name, also its security protocol
_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SASL_AUTHENTICATION_FAILED = 58


def enabled(settings: Settings) -> bool:
    """Whether the local broker runs with SASL; refuses what it cannot run."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return False
    if protocol != "SASL_PLAINTEXT" or settings.kafka_sasl_mechanism != "PLAIN":
        raise RuntimeError(
            f"the local Kafka runs PLAINTEXT or SASL_PLAINTEXT with PLAIN, not {protocol} "
            f"({settings.kafka_sasl_mechanism}): point KAFKA_BOOTSTRAP_SERVERS at a broker with TLS")
    if not local_user_ok(settings.kafka_sasl_username, settings.kafka_sasl_password):
        raise RuntimeError("the local Kafka needs a TUNIX_KAFKA_SASL_USERNAME of letters, digits, ._- and a "
                           "TUNIX_KAFKA_SASL_PASSWORD without quotes, backslashes or commas")
    return True


def server_properties(settings: Settings, client_port: int, controller_port: int) -> dict[str, str]:
    """The listeners, SASL and authorizer lines of a node's server.properties."""
    admin, password = settings.kafka_sasl_username, settings.kafka_sasl_password
    users = {**local_users(settings), admin: password}
    jaas = (f'{_LOGIN} required username="{admin}" password="{password}" '
            + " ".join(f'user_{name}="{secret}"' for name, secret in users.items()) + ";")
    return {
        "listeners": f"{LISTENER}://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{LISTENER}://127.0.0.1:{client_port}",
        "inter.broker.listener.name": LISTENER,
        # The controllers' listener too: no port of the node answers without a password.
        "listener.security.protocol.map": f"CONTROLLER:SASL_PLAINTEXT,{LISTENER}:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        f"listener.name.{LISTENER.lower()}.plain.sasl.jaas.config": jaas,
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": _AUTHORIZER,
        "super.users": f"User:{admin}",  # the nodes themselves and the local stack
        "allow.everyone.if.no.acl.found": "false",
    }


def authenticate(sock: socket.socket, settings: Settings, recv) -> None:
    """SaslHandshake v1 + SaslAuthenticate v0 with PLAIN on a fresh connection, by hand (the
    stack needs no Kafka client); raises ConnectionError when the broker refuses."""
    mechanism = b"PLAIN"
    _request(sock, recv, 17, 1, struct.pack(">h", len(mechanism)) + mechanism)
    token = b"\0" + settings.kafka_sasl_username.encode() + b"\0" + settings.kafka_sasl_password.encode()
    response = _request(sock, recv, 36, 0, struct.pack(">i", len(token)) + token)
    (error,) = struct.unpack(">h", response[:2])
    if error == _SASL_AUTHENTICATION_FAILED:
        raise ConnectionError("the local Kafka refused TUNIX_KAFKA_SASL_USERNAME's password")
    if error:
        raise ConnectionError(f"SASL authentication error {error}")


def _request(sock: socket.socket, recv, api_key: int, version: int, body: bytes) -> bytes:
    client_id = b"tunix-stack"
    header = struct.pack(">hhih", api_key, version, 1, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    size = struct.unpack(">i", recv(sock, 4))[0]
    response = recv(sock, size)
    (error,) = struct.unpack(">h", response[4:6])
    if api_key == 17 and error:
        raise ConnectionError(f"SASL handshake error {error}")
    return response[4:]  # without the correlation id
