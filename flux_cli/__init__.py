"""fluxpy's command-line interface."""
from controllers import __version__

__all__ = ["__version__"]
