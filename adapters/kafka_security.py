"""How every Kafka client of the service authenticates: TLS and SASL settings, checked once.

`client_options(settings)` is the one place that turns TUNIX_KAFKA_SECURITY_PROTOCOL and its
companions into aiokafka keyword arguments; every producer, consumer and admin client of the
service is built with them (the publisher hands them to FastStream). With the default
PLAINTEXT it returns {}, so plaintext clients are built exactly as before.

`check(settings)` runs when Settings is built (adapters/settings.py): a process with a
contradictory or incomplete setting refuses to start with one sentence that names the
variable, never a password.
"""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_USER_NAME = re.compile(r"[A-Za-z0-9._-]+")
# The local broker writes passwords into a JAAS value in double quotes in a properties file.
_UNSAFE_IN_JAAS = set('"\\,\n\r')


def check(settings: Settings) -> None:
    """Raise ValueError (naming the variable, not the secret) unless the settings make sense."""
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"TUNIX_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    if sasl:
        if settings.kafka_sasl_mechanism not in MECHANISMS:
            raise ValueError(f"TUNIX_KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, "
                             f"not {settings.kafka_sasl_mechanism!r}")
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            raise ValueError(f"TUNIX_KAFKA_SECURITY_PROTOCOL={protocol} needs TUNIX_KAFKA_SASL_USERNAME "
                             "and TUNIX_KAFKA_SASL_PASSWORD")
    elif settings.kafka_sasl_username or settings.kafka_sasl_password:
        # Credentials that would silently not be sent: the operator meant SASL.
        raise ValueError(f"TUNIX_KAFKA_SASL_USERNAME/PASSWORD are set but TUNIX_KAFKA_SECURITY_PROTOCOL is "
                         f"{protocol}: use SASL_SSL (or SASL_PLAINTEXT) to send them")
    files = {"TUNIX_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
             "TUNIX_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
             "TUNIX_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile}
    given = [name for name, path in files.items() if path is not None]
    if given and not tls:
        raise ValueError(f"{', '.join(given)} set but TUNIX_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                         "use SSL or SASL_SSL for TLS")
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise ValueError("TUNIX_KAFKA_SSL_KEYFILE needs TUNIX_KAFKA_SSL_CERTFILE (the client certificate)")
    local_users(settings)  # raises on a malformed TUNIX_KAFKA_LOCAL_USERS


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for a producer, consumer or admin client of this process."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if protocol.startswith("SASL_"):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password)
    return options


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the brokers' certificates and host names (aiokafka's helper cannot turn that
    off): against TUNIX_KAFKA_SSL_CAFILE, else the system's CAs; presents the client
    certificate when one is given (mTLS)."""
    for name, path in (("TUNIX_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
                       ("TUNIX_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
                       ("TUNIX_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile)):
        if path is not None and not path.is_file():
            raise ValueError(f"{name}: no readable file at {path}")
    from aiokafka.helpers import create_ssl_context  # here: Settings imports this module, keep that light

    try:
        return create_ssl_context(cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
                                  keyfile=settings.kafka_ssl_keyfile, password=settings.kafka_ssl_key_password)
    except ssl.SSLError as exc:  # a file that is not PEM, a key that does not match or needs a password
        raise ValueError(f"TUNIX_KAFKA_SSL_* files could not be loaded: {exc.reason or exc}") from None


def local_users(settings: Settings) -> dict[str, str]:
    """TUNIX_KAFKA_LOCAL_USERS (`name:password,...`): the extra SASL/PLAIN users of the local
    broker (provisioning/kafka.py), besides TUNIX_KAFKA_SASL_USERNAME, its super user."""
    users: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in (settings.kafka_local_users or "").split(","))):
        name, sep, password = entry.partition(":")
        if not sep or not local_user_ok(name, password):
            shown = name if _USER_NAME.fullmatch(name) else "an entry"
            raise ValueError(f"TUNIX_KAFKA_LOCAL_USERS: {shown} is not name:password (names of letters, digits, "
                             "._-; passwords without quotes, backslashes or commas)")
        users[name] = password
    return users


def local_user_ok(name: str, password: str) -> bool:
    """Whether the local broker can hold this user: its JAAS line quotes names and passwords."""
    return bool(_USER_NAME.fullmatch(name)) and bool(password) and not _UNSAFE_IN_JAAS & set(password)
