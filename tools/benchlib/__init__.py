"""Pieces of ``tools/bench.py``: the load loop that runs in client processes, the bare ZeroMQ echo server
that gives the ceiling, the process pool that drives both, and the report.

``tools/bench.py`` is run as a script, so Python puts ``tools/`` first on ``sys.path`` and these import as
``benchlib.*``; the spawned client processes inherit that path.
"""
