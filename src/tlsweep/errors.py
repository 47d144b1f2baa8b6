"""One exception tree. Each user-facing error carries a message that names the file, key and fix."""


class TlsweepError(Exception):
    """Base class. The CLI shows the message without a traceback and exits ``exit_code``."""

    exit_code = 2


class ConfigError(TlsweepError):
    """A sweep or search-space file is invalid, or refers to something that does not exist."""


class DataError(TlsweepError):
    """The image data cannot be used as configured."""


class StudyExists(TlsweepError):
    """``run`` was asked to create a study that already exists."""


class TrialFailed(TlsweepError):
    """One trial failed: it is recorded as FAIL with this reason and the sweep goes on."""

    exit_code = 1


class SweepAborted(TlsweepError):
    """The sweep cannot go on (for example, too many failures in a row)."""

    exit_code = 1


class SystematicFailure(TlsweepError):
    """Trials fail in set-up with the same error, which would hit every trial (a backbone that
    cannot be built, say): the sweep stops, and the failed attempts are queued again, so that
    fixing the cause and running ``resume`` spends none of the budget on them."""
