"""Create the template's buckets, queues and bucket notifications in the emulator, through
the ordinary S3 and SQS APIs (what CloudFormation would do on AWS). Idempotent."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config

from slipway_local.template import REGION, Template


def clients(endpoint: str) -> tuple[Any, Any]:
    common: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    s3 = boto3.client(
        "s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}), **common
    )
    return s3, boto3.client("sqs", **common)


def _queue_attributes(
    template: Template, props: dict[str, Any], visibility_override: int | None
) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if "VisibilityTimeout" in props:
        attributes["VisibilityTimeout"] = str(visibility_override or props["VisibilityTimeout"])
    if "MessageRetentionPeriod" in props:
        attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(template.resolve(props["RedrivePolicy"]))
    return attributes


def _notification(template: Template, props: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration in the S3 API's shape."""
    config = template.resolve(props.get("NotificationConfiguration", {}))
    queues = []
    for q in config.get("QueueConfigurations", []):
        entry: dict[str, Any] = {"QueueArn": q["Queue"], "Events": [q["Event"]]}
        rules = q.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        if rules:
            entry["Filter"] = {
                "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
            }
        queues.append(entry)
    return {"QueueConfigurations": queues} if queues else {}


def _cors(props: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's CorsConfiguration in the S3 API's shape."""
    renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
    rules = props.get("CorsConfiguration", {}).get("CorsRules", [])
    return {"CORSRules": [{renamed.get(k, k): v for k, v in r.items()} for r in rules]}


def create_all(template: Template, endpoint: str, visibility_override: int | None = None) -> None:
    s3, sqs = clients(endpoint)
    queues = template.of_type("AWS::SQS::Queue")
    # dead-letter queues first: a redrive policy names its target by ARN
    for logical in sorted(queues, key=lambda q: "RedrivePolicy" in queues[q]["Properties"]):
        props = queues[logical]["Properties"]
        url = sqs.create_queue(QueueName=template.queue_name(logical))["QueueUrl"]
        if url != template.queue_url(logical):
            raise RuntimeError(f"queue URL {url} differs from {template.queue_url(logical)}")
        attributes = _queue_attributes(template, props, visibility_override)
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    for logical, res in template.of_type("AWS::S3::Bucket").items():
        props = res["Properties"]
        name = template.bucket_name(logical)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in props:
            status = props["VersioningConfiguration"]["Status"]
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
        if "CorsConfiguration" in props:
            s3.put_bucket_cors(Bucket=name, CORSConfiguration=_cors(props))
        notification = _notification(template, props)
        if notification:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration=notification
            )
