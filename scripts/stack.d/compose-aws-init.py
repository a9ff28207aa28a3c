"""One-shot set-up of the compose stack's AWS stand-in (moto): the gateways' keys
document and database credentials as Secrets Manager secrets, as in production
(--keys-secret / --storage-secret aws-secretsmanager:ID). Run by docker-compose.yml's
`aws-init` service in the moto image (which has boto3 and cryptography); idempotent: an
existing secret is left as it is, so restarts keep the keys the database was sealed with.
It prints secret names only, never a value.
"""

import base64
import json
import os
import secrets
import sys

import boto3
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def keys_document() -> str:
    """A keys document like `gateway keys-generate`'s (docs/configuration.md)."""
    token_key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return json.dumps(
        {
            "kek": {
                "id": "protea-kek",
                "current_version": 1,
                "versions": {"1": base64.b64encode(secrets.token_bytes(32)).decode()},
            },
            "token": {
                "current": "tok-1",
                "keys": {"tok-1": base64.b64encode(token_key).decode()},
            },
        }
    )


def ensure_secret(client, name: str, value: str) -> None:
    try:
        client.create_secret(Name=name, SecretString=value)
        print(f"created secret {name}")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceExistsException":
            raise
        print(f"secret {name} exists; kept")


def main() -> int:
    client = boto3.client(
        "secretsmanager",
        region_name=os.environ["AWS_REGION"],
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    )
    ensure_secret(client, os.environ["PROTEA_KEYS_SECRET_ID"], keys_document())
    database = {
        "username": os.environ["POSTGRES_USER"],
        "password": os.environ["POSTGRES_PASSWORD"],
    }
    ensure_secret(client, os.environ["PROTEA_DATABASE_SECRET_ID"], json.dumps(database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
