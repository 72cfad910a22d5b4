"""tilefleet: Earth-observation work tile by tile, at any scale."""

__version__ = "0.1.0"
