"""Stand-ins for `compare` that the job queue's worker processes load by name ("tests.job_runners:NAME").

They misbehave on purpose, on a chosen seed, so the queue's tests can see what a server does when
a worker fails, dies or does not answer a stop.
"""

import os
import signal
import time

from transferlab import compare


def broken(config, arms, callbacks, stop, max_work):
    raise RuntimeError("CUDA out of memory")


def dies_on_seed_13(config, arms, callbacks, stop, max_work):
    """The worker process is killed (as by the kernel when out of memory) on seed 13."""
    if config.seed == 13:
        os.kill(os.getpid(), signal.SIGKILL)
    return compare(config, arms, callbacks=callbacks, stop=stop, max_work=max_work)


def deaf_on_seed_7(config, arms, callbacks, stop, max_work):
    """On seed 7, a minute-long step that never looks at the stop flag (a slow folder of photos, say)."""
    if config.seed == 7:
        time.sleep(60)
    return compare(config, arms, callbacks=callbacks, stop=stop, max_work=max_work)
