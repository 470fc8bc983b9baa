"""Where a run's work happens.

The local engine is ``naig.runner.run`` itself: one process, one event loop, dialogues
fanned out under ``--concurrency``. ``naig.engines.ray`` spreads the same pipeline over a
Ray cluster in shards of attempt indices, each shard a ``runner.run`` of its own.
"""
