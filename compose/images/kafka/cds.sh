#!/usr/bin/env bash
# Image build step: runs a throwaway broker and a few tools once with
# -XX:ArchiveClassesAtExit, leaving class-data-sharing archives in
# /opt/kafka/cds/<main class>.jsa (broker, storage format) and tools.jsa (the
# other tools). kafka-tool.sh uses them; a JVM refuses a stale one by itself.
set -euo pipefail
B=/opt/kafka/bin A=/opt/kafka/cds W="$(mktemp -d)"
mkdir -p "$A"
sed "s#^log.dirs=.*#log.dirs=$W/data#" /etc/kafka/docker/server.properties > "$W/server.properties"
cp /etc/kafka/docker/*.yaml /opt/kafka/config/
dump() { KAFKA_OPTS="-XX:ArchiveClassesAtExit=$A/$1.jsa -Xlog:cds=error" "${@:2}"; }
dump kafka.tools.StorageTool $B/kafka-storage.sh format -t "$($B/kafka-storage.sh random-uuid)" -c "$W/server.properties" >/dev/null
# (not through dump(): $! must be the JVM itself, which dumps when TERMed)
KAFKA_OPTS="-XX:ArchiveClassesAtExit=$A/kafka.Kafka.jsa -Xlog:cds=error" \
  $B/kafka-server-start.sh "$W/server.properties" > "$W/log" 2>&1 &
pid=$!
for _ in $(seq 120); do grep -q 'Kafka Server started' "$W/log" && break; sleep 0.5; done
grep -q 'Kafka Server started' "$W/log" || { cat "$W/log"; exit 1; }
# Traffic, so the broker's produce/fetch/group/SCRAM paths are archived too.
dump tools $B/kafka-configs.sh --bootstrap-server localhost:9092 --alter --entity-type users --entity-name cds \
  --add-config 'SCRAM-SHA-512=[password=cds]' >/dev/null
$B/kafka-topics.sh --bootstrap-server localhost:9092 --create --topic cds --partitions 2 >/dev/null
seq 1000 | $B/kafka-console-producer.sh --bootstrap-server localhost:9092 --topic cds
$B/kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic cds --group cds \
  --from-beginning --max-messages 1000 >/dev/null
kill -TERM "$pid"; wait "$pid" || true
[ -s "$A/kafka.Kafka.jsa" ] || { tail -20 "$W/log"; exit 1; }
rm -rf "$W" /opt/kafka/config/*
ls -l "$A"
