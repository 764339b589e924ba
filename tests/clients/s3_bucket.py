"""An independent S3 client (boto3) for the recorder's upload tests.

    s3_bucket.py ENDPOINT create BUCKET
    s3_bucket.py ENDPOINT list BUCKET             -> JSON {key: {"size": n, "content_type": t}}
    s3_bucket.py ENDPOINT get BUCKET KEY FILE

Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
"""

import json
import sys

import boto3
from botocore.config import Config


def main() -> None:
    endpoint, command, bucket, *rest = sys.argv[1:]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    if command == "create":
        s3.create_bucket(Bucket=bucket)
    elif command == "list":
        objects = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                head = s3.head_object(Bucket=bucket, Key=item["Key"])
                objects[item["Key"]] = {
                    "size": item["Size"],
                    "content_type": head.get("ContentType"),
                }
        print(json.dumps(objects))
    elif command == "get":
        key, file = rest
        s3.download_file(bucket, key, file)
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
