"""The one exception the video readers raise for files they cannot read."""


class VideoReadError(ValueError):
    """A video file is missing, corrupt, empty or not a video.

    The message names the file, the problem and what to do about it, e.g.
    ``VideoReadError: /data/a.mp4: no video stream found (streams: audio). Pass a file that contains video.``
    """
