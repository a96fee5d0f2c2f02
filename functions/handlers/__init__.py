"""Lambda entry points: decorators plus one call into the control plane (``spotline``)."""
