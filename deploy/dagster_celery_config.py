"""Celery settings of the kizen-sync workers: put this folder on every worker's PYTHONPATH.

``celery -A dagster_celery.app worker`` builds its app from ``dagster_celery.defaults`` and
then imports a module named ``dagster_celery_config`` when one is importable: this one.

    PYTHONPATH=deploy celery -A dagster_celery.app worker -Q dagster -c 1 -l info

Broker and result backend come from the environment, under Celery's own names, the same
variables the runs read when they submit steps (``executor.type: celery``):

    CELERY_BROKER_URL      default pyamqp://guest@localhost:5672//  (RabbitMQ)
    CELERY_RESULT_BACKEND  default rpc://  (or redis://host:6379/0 with the celery extra)

Why the two task settings below: a step is acknowledged only when it *ends*
(``task_acks_late``), and a step whose worker process died is handed back to the broker
(``task_reject_on_worker_lost``) instead of being reported failed. So a worker killed in the
middle of a sync (OOM, node lost, ``kill -9``) costs a redelivery to another worker, which
re-plans from what Kizen confirmed and re-sends only the unconfirmed records, instead of a
run left waiting for ever with its pool slot held. kizen-sync steps can be repeated safely:
writes carry absolute values, creates go through upsert, state is saved only after Kizen
confirms.

With RabbitMQ, an unacknowledged delivery is closed after ``consumer_timeout`` (30 minutes by
default, in rabbitmq.conf); raise it above your longest sync step, or the broker redelivers a
step that is still running.
"""

import os

broker_url = os.environ.get("CELERY_BROKER_URL", "pyamqp://guest@localhost:5672//")
result_backend = os.environ.get("CELERY_RESULT_BACKEND", "rpc://")

task_acks_late = True
task_reject_on_worker_lost = True
# One step at a time per worker process: a step is a whole sync (or partition), and a
# prefetched second step would wait behind it instead of going to an idle worker.
worker_prefetch_multiplier = 1
# Keep the results of the run's steps long enough for a slow run worker to collect them.
result_expires = 24 * 3600
