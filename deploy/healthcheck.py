#!/opt/venv/bin/python
"""Health check of the `loanbilling serve` running in this container.

The image's HEALTHCHECK runs it (installed as /usr/local/bin/loanbilling-healthcheck),
and so can a Kubernetes exec probe where the pod serves TLS (the kubelet's own
gRPC probes speak plaintext only). It calls grpc.health.v1.Health/Check on the
server and exits 0 when the server answers SERVING, 1 when it answers anything
else (NOT_SERVING while its database does not answer, or while it shuts down),
2 when it cannot be reached. It prints one line, kept in the container's health log.

It finds the server as the server found its settings: the flags of the
`loanbilling serve` process (PID 1 in a container), then its LOANBILLING_*
environment variables (this process's own when the server's cannot be read),
then the defaults. So it follows --listen, and it
speaks TLS when the server does:

- it trusts the server's own certificate file (--tls-cert-file) and checks the
  first DNS name in it (or --server-name), so no other CA file is needed;
- under mutual TLS (--tls-client-ca-file) it presents --client-cert and
  --client-key, by default the server's own certificate and key, which the
  server accepts when its certificate was issued by the client CA and may be
  used for client authentication; otherwise give it a client certificate.

It uses only what the image already has (Python, grpcio and its health stubs):
no probe binary to ship or to keep patched, on any CPU architecture.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loanbilling.config import Settings, add_flags

SERVER_FLAGS = ("listen", "tls_cert_file", "tls_key_file", "tls_client_ca_file")
WILDCARD_HOSTS = {"", "0.0.0.0", "*"}
IPV6_WILDCARD_HOSTS = {"[::]", "::"}


def _proc(pid: int, name: str) -> list[str] | None:
    """/proc/PID/NAME split at NULs; None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def server_args(pid: int) -> list[str] | None:
    """The arguments after `serve` of process `pid` if it is `loanbilling serve`."""
    argv = _proc(pid, "cmdline") if pid > 0 else None
    for index, word in enumerate((argv or [])[:-1]):
        if Path(word).name == "loanbilling" and argv[index + 1] == "serve":
            return argv[index + 2 :]
    return None


def server_settings(pid: int, environ: dict[str, str]) -> Settings:
    """The server's settings: its flags, then its environment (or `environ`)."""
    args = server_args(pid)
    if args is not None:
        own = _proc(pid, "environ")
        if own is not None:
            environ = dict(item.partition("=")[::2] for item in own)
    parser = argparse.ArgumentParser(add_help=False)
    add_flags(parser, *SERVER_FLAGS)
    flags, _ = parser.parse_known_args(args or [])
    return Settings.load(flags, environ)


def target(listen: str) -> str:
    """Where to reach a server listening on `listen` from inside its container."""
    host, _, port = listen.rpartition(":")
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif host in IPV6_WILDCARD_HOSTS:
        host = "localhost"
    return f"{host}:{port}"


def certificate_name(cert_file: str) -> str | None:
    """The first DNS name of a PEM certificate (else its common name)."""
    try:
        # The stdlib has no public certificate parser; this private one is in every CPython 3.
        decoded = ssl._ssl._test_decode_cert(cert_file)
    except (AttributeError, OSError, ssl.SSLError):
        return None
    for kind, value in decoded.get("subjectAltName", ()):
        if kind == "DNS":
            return value
    for rdn in decoded.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def channel(settings: Settings, options: argparse.Namespace) -> grpc.Channel:
    address = target(settings.listen)
    if not settings.tls_cert_file:
        return grpc.insecure_channel(address)
    chain = Path(settings.tls_cert_file).read_bytes()
    client_key = client_chain = None
    if settings.tls_client_ca_file:
        client_key = Path(options.client_key or settings.tls_key_file).read_bytes()
        client_chain = Path(options.client_cert or settings.tls_cert_file).read_bytes()
    credentials = grpc.ssl_channel_credentials(chain, client_key, client_chain)
    name = options.server_name or certificate_name(settings.tls_cert_file)
    channel_options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(address, credentials, options=channel_options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loanbilling-healthcheck",
        description="Exit 0 when the loanbilling server in this container answers SERVING.",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--service", default="", help="health service name (default: overall)")
    parser.add_argument("--server-name", default="", help="TLS name to check (default: cert's)")
    parser.add_argument("--client-cert", default="", help="client certificate for mutual TLS")
    parser.add_argument("--client-key", default="", help="client key for mutual TLS")
    parser.add_argument(
        "--pid", type=int, default=1, help="the serve process to read flags from (0: none)"
    )
    options = parser.parse_args(argv)
    try:
        settings = server_settings(options.pid, dict(os.environ))
        with channel(settings, options) as connection:
            reply = health_pb2_grpc.HealthStub(connection).Check(
                health_pb2.HealthCheckRequest(service=options.service),
                timeout=options.timeout,
            )
    except (OSError, ValueError) as error:
        print(f"unhealthy: {error}")
        return 2
    except grpc.RpcError as error:
        print(f"unhealthy: {target(settings.listen)}: {error.code().name}: {error.details()}")
        return 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{'healthy' if status == 'SERVING' else 'unhealthy'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
