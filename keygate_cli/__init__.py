"""The ``keygate`` command: the top floor, the only package that knows every service."""
