"""moto's S3 server over HTTPS with a certificate of its own, for the tests of a TLS object store
(an on-premises MinIO with its own certificate authority, say).

Writes DIR/ca.pem, a certificate authority of its own, the server's certificate for 127.0.0.1
signed by it (with its key) and DIR/other-ca.pem, an unrelated authority; creates BUCKET, then
serves on 127.0.0.1:PORT until killed.

Usage: python3 tls_stand_in.py PORT DIR BUCKET
"""

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
from werkzeug.test import Client


def certificate(subject, issuer, public_key, signing_key, ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def write_certificates(folder):
    """An authority (ca.pem) and the server's certificate for 127.0.0.1 signed by it."""
    name = lambda text: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1()
    )
    authority = name("ecgfm test authority")
    ca = certificate(authority, authority, ca_key.public_key(), ca_key, True)
    server = certificate(name("127.0.0.1"), authority, server_key.public_key(), ca_key, False)
    pem = serialization.Encoding.PEM
    paths = [os.path.join(folder, f) for f in ("ca.pem", "server.pem", "server-key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(server.public_bytes(pem))
    with open(paths[2], "wb") as f:
        f.write(
            server_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    # An authority unrelated to the server, for a bundle that lacks the server's.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = certificate(name("another authority"), name("another authority"), other_key.public_key(), other_key, True)
    with open(os.path.join(folder, "other-ca.pem"), "wb") as f:
        f.write(other.public_bytes(pem))
    return paths[1], paths[2]


def main():
    port, folder, bucket = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server, key = write_certificates(folder)
    app = DomainDispatcherApplication(create_backend_app)
    created = Client(app).put(f"/{bucket}", headers={"Host": f"127.0.0.1:{port}"})
    if created.status_code != 200:
        sys.exit(f"creating bucket {bucket}: {created.status}")
    run_simple("127.0.0.1", port, app, threaded=True, ssl_context=(server, key))


main()
