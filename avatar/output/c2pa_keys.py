"""The C2PA signing key and certificate chain.

On first use a local ES256 (P-256) CA and a leaf signing certificate are created with
``cryptography`` under ``avatar_home()/provenance/``; the CA is the trust anchor that turns a
manifest from "Valid" into "Trusted" when verifying. Use your own credentials instead with
``$AVATAR_C2PA_CERT`` (PEM chain: leaf first, then intermediates/CA), ``$AVATAR_C2PA_KEY``
(PKCS#8 PEM private key) and optionally ``$AVATAR_C2PA_TRUST`` (PEM trust anchors).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import PRIVATE_FILE_MODE, avatar_home, private_dir, warn_if_exposed

CERT_ENV, KEY_ENV, TRUST_ENV = "AVATAR_C2PA_CERT", "AVATAR_C2PA_KEY", "AVATAR_C2PA_TRUST"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class SigningCredentials:
    """PEM bytes: chain (leaf first), PKCS#8 private key, trust anchors (may be empty)."""

    chain_pem: bytes
    key_pem: bytes
    trust_pem: bytes
    source: str


def provenance_dir() -> Path:
    return avatar_home() / "provenance"


def load_credentials() -> SigningCredentials:
    """The user's credentials from the environment, else the local ones (created on first use)."""
    cert, key = os.environ.get(CERT_ENV), os.environ.get(KEY_ENV)
    if cert or key:
        if not (cert and key):
            raise ConfigError(f"set both ${CERT_ENV} and ${KEY_ENV} (PEM files) to sign with your own key, "
                              f"got only {'$' + CERT_ENV if cert else '$' + KEY_ENV}")
        try:
            chain, pkey = Path(cert).read_bytes(), Path(key).read_bytes()
            trust_file = os.environ.get(TRUST_ENV)
            trust = Path(trust_file).read_bytes() if trust_file else b""
        except OSError as exc:
            raise ConfigError(f"cannot read the C2PA credentials ({exc}); check ${CERT_ENV}/${KEY_ENV}") from exc
        return SigningCredentials(chain, pkey, trust, "environment")
    folder = provenance_dir()
    files = [folder / n for n in ("chain.pem", "signer.key", "ca.pem")]
    with _LOCK:
        if not all(f.is_file() for f in files):
            private_dir(folder)
            # other processes (batch workers) may be making them too: one key and chain each would
            # interleave, a key of one with the chain of another, and no signature would verify
            with open(folder / ".create.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if not all(f.is_file() for f in files):
                        _create_local(folder)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
    warn_if_exposed(f"the signing key folder {folder}", [folder, folder / "signer.key"])
    chain, pkey, trust = (f.read_bytes() for f in files)
    return SigningCredentials(chain, pkey, trust, str(folder))


def _create_local(folder: Path) -> None:
    """A local CA (CA:TRUE) and a leaf (digitalSignature, emailProtection EKU) as C2PA requires."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    from ..media.atomic import atomic_write_bytes  # noqa: PLC0415

    private_dir(folder)
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "avatar local provenance CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avatar (local install)")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + _dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "avatar output signer"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avatar (local install)")])
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_bytes = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Key first, trust anchor last: a concurrent reader only proceeds when all three exist.
    atomic_write_bytes(folder / "signer.key", key_bytes, mode=PRIVATE_FILE_MODE)
    atomic_write_bytes(folder / "chain.pem", leaf.public_bytes(pem) + ca.public_bytes(pem), mode=PRIVATE_FILE_MODE)
    atomic_write_bytes(folder / "ca.pem", ca.public_bytes(pem), mode=PRIVATE_FILE_MODE)
