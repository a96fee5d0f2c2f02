"""The AWS services other than the ledger's table, each behind one small class.

The drop bucket (S3: bounded reads, writes only under spotline's prefixes), SageMaker training
jobs, the notifier (SNS alerts and ``spotline`` EventBridge events) and the relaunch delay queue
(SQS). Each turns ``ClientError`` into domain exceptions in one place; clients are injected or
built lazily on first use (:mod:`spotline.adapters.aws`). Imports only :mod:`spotline.domain`.
"""
