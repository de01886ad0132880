"""Exceptions a user can act on. The CLI prints them as one line and exits with code 2."""


class ChatforgeError(Exception):
    """Base class: the message alone must tell the user what to fix."""


class ConfigError(ChatforgeError):
    """A preset, override or config file is wrong (unknown key, bad value)."""


class InputError(ChatforgeError):
    """An input file is missing or unreadable; the message names the file, record and reason."""


class RunDirError(ChatforgeError):
    """A run directory lacks an artifact a stage needs, or holds an incompatible one."""
