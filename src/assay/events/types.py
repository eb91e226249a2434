"""The events Assay records, by name."""

EVENT_TYPES = frozenset(
    {
        "batch.queued",
        "batch.processing",
        "batch.completed",
        "batch.failed",
        "batch.canceled",
        "object.created",
        "object.deleted",
        "upload.confirmed",
        "collection.documents.written",
        "webhook.test",
    }
)
