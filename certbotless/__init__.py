"""certbotless: ACME certificates for an nginx edge on Docker Swarm, stored in the swarm."""

from importlib.metadata import PackageNotFoundError, version

# The one version is pyproject.toml's; the installed distribution's metadata carries it (an
# editable install reads it at install time: `pip install -e .` again after changing it).
try:
    __version__ = version("certbotless")
except PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"
