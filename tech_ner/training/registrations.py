"""Every config function a training config names: the runtime (`tech_ner.pipeline`) and the optimizer.

Import it, or pass this file to spaCy's own commands: `spacy debug config CONFIG --code tech_ner/training/registrations.py`
(spaCy imports the file alone, so it imports the package absolutely).
"""

import tech_ner.pipeline  # noqa: F401
import tech_ner.training.optimizers  # noqa: F401
