"""jobgate: a job gateway for compute clusters.

The public SDK: `Client`, `Job`, `JobSpec`, `JobState` and the error types.
"""

from __future__ import annotations

__version__ = "0.1.0"
