"""The server's TLS files, reloaded without a restart.

gRPC asks `_fetch` for the certificate configuration at every new connection
(`grpc.dynamic_ssl_server_credentials`). It answers with new files when a
SIGHUP read them (`reload`) or when they changed on disk since they were last
read (a cheap `stat` of each file): a renewed certificate is served to the next
connections, and connections already open keep theirs, so no call is dropped.
New files are checked before they are handed over (the certificate chain must
parse and match the key, the client CA must parse); files that do not pass
leave the current ones in place and log an error, once per change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL
)


@dataclass(frozen=True)
class _Files:
    """One reading of the files: their contents, and their stat when read."""

    cert: bytes
    key: bytes
    client_ca: bytes | None
    signature: tuple

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key, self.cert)], root_certificates=self.client_ca
        )

    def fingerprint(self) -> str:
        """SHA-256 of the first certificate of the chain, as `openssl x509
        -fingerprint -sha256` prints it."""
        first = _PEM_CERTIFICATE.search(self.cert)
        if first is None:
            return "unknown"
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(first.group().decode("ascii")))
        return ":".join(f"{byte:02X}" for byte in digest.digest())


class TlsFiles:
    """The certificate chain, its key and the optional client CA, as server
    credentials that follow the files. Raises OSError or ValueError at
    construction when the files cannot be read or do not pass the checks."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str = "") -> None:
        self.paths = [cert_file, key_file, *([client_ca_file] if client_ca_file else [])]
        self.cert_file, self.key_file, self.client_ca_file = cert_file, key_file, client_ca_file
        self._lock = threading.Lock()
        self._current = self._read()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._refused: tuple | None = None  # the stat of files already refused once
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._current.configuration(),
            self._fetch,
            require_client_authentication=bool(client_ca_file),
        )
        log.info("TLS certificate %s (sha256 %s)", cert_file, self._current.fingerprint())

    def reload(self) -> bool:
        """Reads the files again (SIGHUP). True when they pass the checks: new
        connections get them. False keeps the current files (an error is logged)."""
        with self._lock:
            return self._take(self._signature(), why="SIGHUP")

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's callback, on one of its threads, at each new connection: new
        files, or None for "keep the current ones"."""
        try:
            with self._lock:
                if self._pending is None:
                    signature = self._signature()
                    if signature not in (self._current.signature, self._refused):
                        self._take(signature, why="changed on disk")
                pending, self._pending = self._pending, None
                return pending
        except Exception:  # noqa: BLE001 - never fail a handshake over a reload
            log.exception("TLS reload failed; still serving the current certificate")
            return None

    def _take(self, signature: tuple, *, why: str) -> bool:
        try:
            files = self._read()
        except (OSError, ValueError) as error:
            self._refused = signature
            log.error(
                "TLS files not reloaded (%s), still serving certificate sha256 %s: %s",
                why,
                self._current.fingerprint(),
                error,
            )
            return False
        self._refused = None
        if (files.cert, files.key, files.client_ca) == (
            self._current.cert,
            self._current.key,
            self._current.client_ca,
        ):
            self._current = files
            log.info("TLS files reloaded (%s): unchanged", why)
            return True
        self._current = files
        self._pending = files.configuration()
        log.info(
            "TLS files reloaded (%s): new connections get certificate %s (sha256 %s)",
            why,
            self.cert_file,
            files.fingerprint(),
        )
        return True

    def _signature(self) -> tuple:
        """Each file's identity and last change (None when missing): a renewed file,
        or a Kubernetes Secret's swapped symlink, changes it."""
        stats = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError:
                stats.append(None)
                continue
            stats.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stats)

    def _read(self) -> _Files:
        before = self._signature()
        cert, key = _read(self.cert_file), _read(self.key_file)
        client_ca = _read(self.client_ca_file) if self.client_ca_file else None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as error:
            raise ValueError(
                f"{self.cert_file} and {self.key_file} are not a PEM certificate chain and "
                f"its private key ({error.reason or error})"
            ) from None
        if client_ca is not None:
            try:
                context.load_verify_locations(cadata=client_ca.decode("ascii"))
            except (ssl.SSLError, UnicodeDecodeError) as error:
                reason = getattr(error, "reason", None) or error
                raise ValueError(
                    f"{self.client_ca_file} is not PEM CA certificates ({reason})"
                ) from None
        if self._signature() != before:
            raise ValueError("the files changed while they were read (read again next time)")
        return _Files(cert, key, client_ca, before)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise OSError(f"cannot read {path}: {error.strerror}") from None
