"""Datasets of vaebench: dSprites (rendered, or the official file) and handwritten digits (the
2-D latent VAE's second dataset)."""
import zipfile
from pathlib import Path

from vaebench.data.digits import SKLEARN_DIGITS, Digits, DigitsFileError, load_digits
from vaebench.data.dsprites import DSprites, DSpritesFileError, DSpritesTorch, load_dsprites


def is_digits(path) -> bool:
    """Whether a data path names digits (scikit-learn's, or an MNIST .npz with x_train) rather than dSprites."""
    if path is None:
        return False
    if str(path) == SKLEARN_DIGITS:
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return "x_train.npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False  # dSprites' loader names what is wrong with it


def load_dataset(path=None, **kwargs):
    """Digits where ``path`` names them (``is_digits``), else dSprites (``load_dsprites``)."""
    return load_digits(str(path)) if is_digits(path) else load_dsprites(path, **kwargs)


__all__ = ["SKLEARN_DIGITS", "DSprites", "DSpritesFileError", "DSpritesTorch", "Digits", "DigitsFileError",
           "is_digits", "load_dataset", "load_digits", "load_dsprites"]
