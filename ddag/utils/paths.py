"""File names that come from configs or files must stay inside the folder they are meant for."""

import re
from pathlib import Path

from ddag.errors import ConfigError

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def file_in(folder, name: str, what: str) -> Path:
    """`folder / name` for a plain file name; ConfigError for anything that could leave `folder`.

    A plain name has no folder part, does not start with a dot and has no "..": `results`,
    `features.npz`. `what` names the setting in the error message.
    """
    name = str(name)
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{what}={name!r} is not a plain file name (letters, digits, _ . + -, no folders); "
            "it must stay inside its folder"
        )
    return Path(folder) / name
