"""Exit codes of the ``retrace`` command (documented in ``docs/troubleshooting.md``).

``record`` and ``replay`` otherwise exit with the program's own status (0-255); Retrace's own
failures use the codes below, chosen above the range programs conventionally use.
"""

from __future__ import annotations

#: Success (and the program's own status is passed through otherwise).
OK = 0
#: The command line is wrong (argparse's convention).
USAGE = 2
#: Replay diverged from the recording.
DIVERGED = 201
#: Replay reached the end of a truncated recording (the recorded program was killed).
TRUNCATED = 202
#: The recording file does not exist or cannot be read.
NOT_FOUND = 203
#: The file is not a Retrace recording (or not a recorded program).
NOT_A_RECORDING = 204
#: The recording is damaged.
CORRUPT = 205
#: The recording was made by an incompatible Python, Retrace version or configuration.
INCOMPATIBLE = 206
#: The program to record or replay does not exist.
PROGRAM_NOT_FOUND = 207
#: A patch configuration file is invalid.
CONFIG_ERROR = 208
#: The recording file cannot be created or written.
CANNOT_WRITE = 209
#: A bug in Retrace (set RETRACE_DEBUG=1 to see the traceback).
INTERNAL_ERROR = 210

ALL = {
    name: value
    for name, value in globals().items()
    if name.isupper() and isinstance(value, int) and name != "ALL"
}
