"""The ledger: spotline's memory of runs, attempts, batches, closes and the promoted model, in one
DynamoDB table (:mod:`spotline.ledger.table`), as typed records (:mod:`spotline.ledger.records`).

Each item kind has one module that owns its keys and its transitions (runs, batches, models), and
:mod:`spotline.ledger.notices` is the one send-once protocol. Imports :mod:`spotline.domain` and
the client factory of :mod:`spotline.adapters.aws`.
"""
