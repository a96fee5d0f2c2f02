"""spotline's control plane: three flows over one ledger.

* a config dropped under ``configs/`` becomes a training run (:mod:`spotline.training`);
* images dropped under ``inference/<batch>/`` become inference batches (:mod:`spotline.inference`);
* an ended job is recovered or settled (:mod:`spotline.runs`), whatever its kind.

The folders are layers; a module imports only from its own layer or the layers below it, never
from a layer above, and never from a sibling flow (a test reads the imports and enforces it)::

    wiring.py                          builds the flows from Settings (handlers, tests, local stack)
    training/   inference/             the two kinds of run (siblings: neither imports the other)
    runs/                              what every run shares: first attempt, job state, relaunch, publish
    ledger/                            DynamoDB: typed records, runs, batches, models, send-once notices
    adapters/                          the other AWS services (S3, SageMaker, SNS, EventBridge, SQS)
    domain/                            pure rules: states, names, events, classification, retry, cost
    config/                            the config schema, shared with the container
    metric_names.py                    the metric lines of spotline's image (the schema reads the names)

Only ``adapters/`` and ``ledger/`` hold boto3 clients, and nothing imports boto3 at module level:
the container copies ``config/`` and ``metric_names.py`` and nothing else.
"""
