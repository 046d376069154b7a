"""`ens audit`: what in the competition's data would make out-of-fold scores flatter the model.

near_copies.py finds near-duplicate groups within train and test images with a near-copy in
train (thumbnail correlation over small shifts); shift.py measures train/test shift by adversarial
validation; stats.py counts image sizes, modes and formats and the class balance of each fold; run.py writes it all into the workspace's audit/ folder.
"""

from ensemble.results.audit.embedded import DEFAULT_EMBEDDING_THRESHOLD
from ensemble.results.audit.run import DEFAULT_THRESHOLD, AuditResult, Embeddings, run_audit

__all__ = ["DEFAULT_EMBEDDING_THRESHOLD", "DEFAULT_THRESHOLD", "AuditResult", "Embeddings", "run_audit"]
