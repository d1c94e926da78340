"""gunicorn's settings for the portal (read from the working directory: the Dockerfile's,
docker-compose's and the benches' gunicorn all start here). Command-line flags win."""

import gc


def post_worker_init(worker):
    # The app is loaded: move what it allocated (Django, the URLconfs, phonenumbers'
    # metadata, about 400,000 objects) out of the collector's reach. Otherwise every
    # full collection walks them all, a pause of several ms landing on whichever request
    # triggered it: the tail of the API's latency (bench/api.py).
    gc.freeze()
