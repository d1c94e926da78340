"""A pytest plugin loaded before Django reads its settings (pyproject.toml: ``-p``).

Tests run with DEBUG off, as production does, so settings refuse a missing, short or
placeholder SECRET_KEY (enterprise_portal.env). A test run signs nothing worth keeping:
such a key is replaced by a random one for the run, which the processes the tests start
(Celery workers, call engines) inherit.
"""

from enterprise_portal.launcher import throwaway_secret_key

throwaway_secret_key()
