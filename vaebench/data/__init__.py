"""Datasets of vaebench: dSprites (rendered, or the official file)."""
from vaebench.data.dsprites import DSprites, DSpritesFileError, DSpritesTorch, load_dsprites

__all__ = ["DSprites", "DSpritesFileError", "DSpritesTorch", "load_dsprites"]
