"""The one exception type the engine raises for problems a user can fix.

Its message is written for a non-programmer: what went wrong and what to do next.
The CLI prints it without a traceback; the dashboard shows it in an error box.
"""


class StudioError(Exception):
    """A problem with the user's input (data, config, checkpoint), explained in plain words."""
