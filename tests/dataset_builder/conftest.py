"""Fixtures of the dataset_builder tests (the root ``tests/conftest.py`` fixtures are visible here too)."""

import pytest

from dataset_builder.fake_openai_server import FakeOpenAIServer


@pytest.fixture
def server():
    """A local OpenAI-compatible server (chat completions, Files, Batches) with fault injection; see its module."""
    with FakeOpenAIServer() as running:
        yield running
