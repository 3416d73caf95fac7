"""The embedded `local` cluster: jobs run on the machine jobgate runs on."""

from jobgate.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
