"""The AWS services functions call (SQS, S3): the endpoint they reach, and the resources created on it."""
