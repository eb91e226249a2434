"""Running a retriever on the event loop, and when a run must go to a thread instead.

On SQLite a run is a few indexed reads and, for a vector query, one walk of an in-memory
HNSW graph that holds the GIL from start to end. Handing that to a thread frees nothing (the
loop cannot run while the walk holds the GIL) and costs two hops and a session on the far
side, ~0.5 ms of a ~4 ms query. So the endpoint first runs it inline, on the loop. Whatever
may take long (a query model, a filter or BM25 over the whole corpus, opening an index file,
replaying many vector-log changes) raises `RunInThread` before it starts, and the endpoint
runs the whole thing again in a thread. A run only reads, so starting over is safe.
"""

from __future__ import annotations


class RunInThread(Exception):
    """This run would block the event loop: run it again in a thread."""
