"""Nox session modules for Retrace.

``noxfile.py`` holds the everyday sessions (tests, lint, bench, demo) and
imports the modules here, each of which registers the sessions of one concern
(the patched runtime, docs, release) when imported.
"""
