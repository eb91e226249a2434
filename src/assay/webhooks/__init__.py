"""Webhooks: signed, retried deliveries of outbox events to subscribers' URLs."""
