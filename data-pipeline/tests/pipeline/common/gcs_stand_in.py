"""moto's S3 server standing in for Google Cloud Storage's XML API, for the gs:// tests.

object_store's GCS client speaks the XML API, which is S3's protocol with Google's names: a
bearer token instead of an AWS signature, `x-goog-copy-source` instead of `x-amz-copy-source`.
This server renames those two and hands the request to moto; everything else (object paths
`/BUCKET/NAME`, ranged and suffix reads, `list-type=2` listings, multipart uploads) is the same
protocol. An object's generation is its ETag here: answers with an ETag carry it as
`x-goog-generation`, and a write conditional on a generation (`x-goog-if-generation-match`: 0
for "none yet", else the generation) becomes S3's `If-None-Match: *` or `If-Match`. moto does
not check signatures, so the AWS one put in the token's place is a dummy.

Given a service account's public key (PEM), the server first checks each request's bearer token
as Google does a service account's self-signed JWT: its RS256 signature by the matching private
key. A request without one, or signed by another key, is refused (401); only the harness's
unsigned bucket creation (`PUT /BUCKET`) passes unsigned.

Usage: python3 gcs_stand_in.py [PUBLIC_KEY_PEM] PORT
"""

import base64
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

MOTO = DomainDispatcherApplication(create_backend_app)
# moto reads the service (S3) and region from an AWS signature's credential scope; without one
# it answers a read as an anonymous request to a private bucket (403).
DUMMY_SIGNATURE = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


PUBLIC_KEY = None


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signature_refused(environ):
    """Why the request's bearer JWT fails the service account's key, or None when it passes."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if not authorization.startswith("Bearer "):
        if environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].count("/") == 1:
            return None
        return "no bearer token"
    try:
        header, claims, signature = authorization[len("Bearer ") :].split(".")
        PUBLIC_KEY.verify(
            unb64(signature),
            f"{header}.{claims}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (ValueError, InvalidSignature):
        return "the token's RS256 signature does not match the service account's key"
    return None


def gcs_as_s3(environ, start_response):
    if PUBLIC_KEY is not None:
        refused = signature_refused(environ)
        if refused is not None:
            body = f"<Error><Code>AuthenticationRequired</Code><Details>{refused}</Details></Error>"
            start_response("401 Unauthorized", [("Content-Type", "application/xml")])
            return [body.encode()]
    environ["HTTP_AUTHORIZATION"] = DUMMY_SIGNATURE
    if "HTTP_X_GOOG_COPY_SOURCE" in environ:
        environ["HTTP_X_AMZ_COPY_SOURCE"] = environ.pop("HTTP_X_GOOG_COPY_SOURCE")
    generation = environ.pop("HTTP_X_GOOG_IF_GENERATION_MATCH", None)
    if generation == "0":
        environ["HTTP_IF_NONE_MATCH"] = "*"
    elif generation is not None:
        environ["HTTP_IF_MATCH"] = generation
    return MOTO(environ, with_generation(start_response))


def with_generation(start_response):
    """Adds the object's generation (its ETag here) where moto answers with an ETag."""

    def start(status, headers, exc_info=None):
        etags = [v for k, v in headers if k.lower() == "etag"]
        if etags:
            headers = list(headers) + [("x-goog-generation", etags[0].strip('"'))]
        return start_response(status, headers, exc_info)

    return start


if __name__ == "__main__":
    if len(sys.argv) > 2:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        with open(sys.argv[1], "rb") as f:
            PUBLIC_KEY = load_pem_public_key(f.read())
    run_simple("127.0.0.1", int(sys.argv[-1]), gcs_as_s3, threaded=True)
