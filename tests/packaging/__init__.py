"""Artifacts as users get them: the installed wheel and the `sam build` bundle."""
