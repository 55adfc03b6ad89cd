"""Example programs shipped with Retrace (``nox -s demo`` records and replays :mod:`.demo`)."""
