"""spotline's control plane: config, naming, job requests, ledger, retry policy, batching, publishing.

Nothing here imports boto3 at module level: the container imports ``spotline.config`` too.
"""
