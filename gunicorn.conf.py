"""gunicorn's settings for the portal (read from the working directory: the Dockerfile's,
docker-compose's and the benches' gunicorn all start here). Command-line flags win."""

import gc


def post_worker_init(worker):
    # phonenumbers loads its metadata and time zone table on first use: here, not in the
    # worker's first request (a 1,000-device decision took 340 ms instead of 70).
    from devices.keys import warm_up

    warm_up()
    # The app is loaded: move what it allocated (Django, the URLconfs, phonenumbers'
    # metadata, about 400,000 objects) out of the collector's reach. Otherwise every
    # full collection walks them all, a pause of several ms landing on whichever request
    # triggered it: the tail of the API's latency (bench/api.py).
    gc.freeze()
