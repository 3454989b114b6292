"""Serving fixtures: the API's session-trained registry model."""

from tests.api.conftest import trained_registry  # noqa: F401 - a fixture, used by name
