"""moto's S3 server standing in for Google Cloud Storage's XML API, for the gs:// tests.

object_store's GCS client speaks the XML API, which is S3's protocol with Google's names: a
bearer token instead of an AWS signature, `x-goog-copy-source` instead of `x-amz-copy-source`.
This server renames those two and hands the request to moto; everything else (object paths
`/BUCKET/NAME`, ranged and suffix reads, `list-type=2` listings, multipart uploads) is the same
protocol. moto does not check signatures, so the AWS one put in the token's place is a dummy.

Usage: python3 gcs_stand_in.py PORT
"""

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


def gcs_as_s3(environ, start_response):
    environ["HTTP_AUTHORIZATION"] = DUMMY_SIGNATURE
    if "HTTP_X_GOOG_COPY_SOURCE" in environ:
        environ["HTTP_X_AMZ_COPY_SOURCE"] = environ.pop("HTTP_X_GOOG_COPY_SOURCE")
    return MOTO(environ, start_response)


if __name__ == "__main__":
    run_simple("127.0.0.1", int(sys.argv[1]), gcs_as_s3, threaded=True)
