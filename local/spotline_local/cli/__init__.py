"""The ``spotline`` command: the local stack, validate, submit, status, report and the demo.

Imports the local stack (``spotline_local``'s top-level modules); nothing there imports the CLI.
"""
