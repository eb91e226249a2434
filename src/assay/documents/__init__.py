"""Documents: what extractors make of objects, their vectors, and the log of vector changes.

`drafts` is what extractors hand over (typed features and derived blobs); `writer` is the only
path by which documents and their vectors are written, replaced or removed; `log` keeps
`vector_log` in step with `document_vectors` for the vector index caches.
"""
