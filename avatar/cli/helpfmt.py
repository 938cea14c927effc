"""Help formatting shared by every sub-command: each option's default is shown."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless it already says its default, or the
    default is "off" (None, False, empty), where there is nothing useful to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        said = "%(default)" in text or "(default" in text.lower() or "default:" in text.lower()
        if not action.option_strings or said:
            return text
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return text
        if isinstance(action.default, (str, list, tuple)) and not action.default:
            return text
        return f"{text} (default: %(default)s)"


def apply(parser: argparse.ArgumentParser) -> None:
    """Use :class:`DefaultsHelpFormatter` in ``parser`` and all its sub-command parsers."""
    parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                apply(child)
