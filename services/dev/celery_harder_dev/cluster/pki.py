"""Certificates and keys for a throwaway cluster: one CA, leaf certificates, the SA key."""

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
VALIDITY = dt.timedelta(days=30)
# Backdated, so that a clock a little behind still accepts a fresh certificate.
BACKDATE = dt.timedelta(minutes=5)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues leaf certificates into a directory."""

    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> "CertificateAuthority":
        """A new CA valid for VALIDITY."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(common_name)
        now = dt.datetime.now(dt.UTC) - BACKDATE
        usage = x509.KeyUsage(
            digital_signature=True,
            key_cert_sign=True,
            crl_sign=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(common_name, key, certificate)

    def write(self, directory: Path, stem: str) -> Path:
        """Write `<stem>.crt` and `<stem>.key`; returns the certificate's path."""
        directory.mkdir(parents=True, exist_ok=True)
        _write(directory / f"{stem}.key", _key_pem(self.key))
        return _write(
            directory / f"{stem}.crt", self.certificate.public_bytes(serialization.Encoding.PEM)
        )

    def issue(
        self,
        directory: Path,
        stem: str,
        common_name: str,
        *,
        organization: str | None = None,
        usages: Iterable[x509.ObjectIdentifier] = (CLIENT,),
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
    ) -> Path:
        """Issue `<stem>.crt`/`<stem>.key` in `directory`; returns the certificate's path."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - BACKDATE
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        directory.mkdir(parents=True, exist_ok=True)
        _write(directory / f"{stem}.key", _key_pem(key))
        return _write(
            directory / f"{stem}.crt", certificate.public_bytes(serialization.Encoding.PEM)
        )


def write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    """An RSA key pair that signs service-account tokens: (`sa.key`, `sa.pub`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    directory.mkdir(parents=True, exist_ok=True)
    return _write(directory / "sa.key", _key_pem(key)), _write(directory / "sa.pub", public)


def apiserver_dns_names(cluster_domain: str) -> list[str]:
    """The names pods and clients use for the API server."""
    base = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    return [*base, f"kubernetes.default.svc.{cluster_domain}"]
