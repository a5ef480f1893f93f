"""cswm_lib: the fast library behind the cswm-book.

Contrastive Structured World Models (Kipf et al., ICLR 2020) and the negative-sampling study of
Biza, van der Pol & Kipf (ICML 2021 SSL workshop). Chapters in ``book/chapters`` explain; this
package computes.

Importing the package registers its environments with gymnasium (the usual convention), so
``import cswm_lib; gymnasium.make("ShapesTrain-v0")`` works (ids: :data:`cswm_lib.envs.ENV_IDS`).
"""

__version__ = "0.1.0"

from cswm_lib import envs as _envs  # noqa: F401  (registers the environments)
from cswm_lib.errors import CswmError

__all__ = ["CswmError", "__version__"]
