#!/usr/bin/env bash
# Make sure RabbitMQ (127.0.0.1:5672, the Celery broker) and Redis (127.0.0.1:6379, the Celery
# result backend) answer, for the Celery deployment tests (tests/deploy). On these machines both
# are started before the session; if one is down, start it the way the machine does.
set -uo pipefail
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }
wait_for() { for _ in $(seq 1 60); do listening "$1" && return 0; sleep 1; done; return 1; }

if ! listening 5672 && command -v rabbitmq-server >/dev/null 2>&1; then
  echo "RabbitMQ is not answering; starting it ..."
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for 5672 || true
fi
listening 5672 || echo "warning: RabbitMQ is not reachable on 127.0.0.1:5672; the Celery tests will fail" >&2

if ! listening 6379 && command -v redis-server >/dev/null 2>&1; then
  echo "Redis is not answering; starting it ..."
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
  wait_for 6379 || true
fi
listening 6379 || echo "warning: Redis is not reachable on 127.0.0.1:6379; the Celery tests will fail" >&2
exit 0
