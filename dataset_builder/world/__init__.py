"""A synthetic long-video world in which every fact is known: videos, their timelines, exact perception, questions.

See :mod:`.timeline` (ground truth), :mod:`.render` (pixels and MP4s).
"""
