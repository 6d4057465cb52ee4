#!/bin/sh
# Translates apache/kafka-style listener settings into tansu flags.
#   KAFKA_LISTENERS             PLAINTEXT://0.0.0.0:9092   (first entry used)
#   KAFKA_ADVERTISED_LISTENERS  PLAINTEXT://broker:9092    (what clients are told)
#   TANSU_STORAGE               sqlite://tansu.db (relative to /var/lib/tansu) (or memory://tansu/)
set -eu
first_url() { echo "$1" | cut -d, -f1 | sed -E 's#^[A-Za-z_]+://#tcp://#'; }
LISTEN="$(first_url "${KAFKA_LISTENERS:-PLAINTEXT://0.0.0.0:9092}")"
ADVERTISED="$(first_url "${KAFKA_ADVERTISED_LISTENERS:-PLAINTEXT://127.0.0.1:9092}")"
STORAGE="${TANSU_STORAGE:-sqlite://tansu.db}"
echo "tansu: listen $LISTEN advertise $ADVERTISED storage $STORAGE"
exec /usr/local/bin/tansu broker \
  --storage-engine "$STORAGE" \
  --listener-url "$LISTEN" \
  --advertised-listener-url "$ADVERTISED" "$@"
