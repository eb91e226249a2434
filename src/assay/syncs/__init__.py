"""Sync configurations: S3 sources that feed a bucket, run by workers."""
