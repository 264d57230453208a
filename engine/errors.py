"""The one exception type the engine raises for problems a user can fix.

Its message is written for a non-programmer: what went wrong and what to do next.
The CLI prints it without a traceback; the dashboard shows it in an error box.
"""


class StudioError(Exception):
    """A problem with the user's input (data, config, checkpoint), explained in plain words."""


class UploadGone(StudioError):
    """An upload reference (`upload:<sha256>`) whose file, and extracted copy for a zip, are no longer in any uploads
    folder this process knows (engine.paths.resolve_path): deleted, moved, or the reference comes from another
    studio. Callers that know the user's name for the file say it (engine.run_data.dataset_path)."""
