#!/usr/bin/env bash
# /opt/kafka/bin/<tool>.sh: every upstream tool path is a symlink to this file,
# which runs the tool's class the way the tarball's kafka-run-class.sh does
# (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_GC_LOG_OPTS, KAFKA_JMX_OPTS
# with JMX_PORT, KAFKA_LOG4J_OPTS, KAFKA_OPTS, KAFKA_DEBUG with JAVA_DEBUG_PORT).
#   kafka-tool.sh --list        prints the tool names (the image links them)
#   kafka-run-class.sh CLASS .. runs any class
set -euo pipefail
K=/opt/kafka
tools="
kafka-server-start.sh          kafka.Kafka
kafka-storage.sh               kafka.tools.StorageTool
kafka-topics.sh                org.apache.kafka.tools.TopicCommand
kafka-configs.sh               org.apache.kafka.tools.ConfigCommand
kafka-acls.sh                  org.apache.kafka.tools.AclCommand
kafka-consumer-groups.sh       org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
kafka-share-groups.sh          org.apache.kafka.tools.consumer.group.ShareGroupCommand
kafka-groups.sh                org.apache.kafka.tools.GroupsCommand
kafka-metadata-quorum.sh       org.apache.kafka.tools.MetadataQuorumCommand
kafka-cluster.sh               org.apache.kafka.tools.ClusterTool
kafka-features.sh              org.apache.kafka.tools.FeatureCommand
kafka-console-producer.sh      org.apache.kafka.tools.ConsoleProducer
kafka-console-consumer.sh      org.apache.kafka.tools.consumer.ConsoleConsumer
kafka-get-offsets.sh           org.apache.kafka.tools.GetOffsetShell
kafka-transactions.sh          org.apache.kafka.tools.TransactionsCommand
kafka-leader-election.sh       org.apache.kafka.tools.LeaderElectionCommand
kafka-reassign-partitions.sh   org.apache.kafka.tools.reassign.ReassignPartitionsCommand
kafka-delete-records.sh        org.apache.kafka.tools.DeleteRecordsCommand
kafka-log-dirs.sh              org.apache.kafka.tools.LogDirsCommand
kafka-dump-log.sh              org.apache.kafka.tools.DumpLogSegments
kafka-broker-api-versions.sh   org.apache.kafka.tools.BrokerApiVersionsCommand
kafka-client-metrics.sh        org.apache.kafka.tools.ClientMetricsCommand
kafka-delegation-tokens.sh     org.apache.kafka.tools.DelegationTokenCommand
kafka-producer-perf-test.sh    org.apache.kafka.tools.ProducerPerformance
kafka-consumer-perf-test.sh    org.apache.kafka.tools.ConsumerPerformance
kafka-e2e-latency.sh           org.apache.kafka.tools.EndToEndLatency
kafka-verifiable-producer.sh   org.apache.kafka.tools.VerifiableProducer
kafka-verifiable-consumer.sh   org.apache.kafka.tools.VerifiableConsumer
"
name="$(basename "$0")"
if [ "${1:-}" = "--list" ]; then echo "$tools" | awk 'NF {print $1}'; exit 0; fi
if [ "$name" = kafka-run-class.sh ]; then
  [ $# -gt 0 ] || { echo "usage: kafka-run-class.sh CLASS [ARGS]" >&2; exit 1; }
  class="$1"; shift
else
  class="$(echo "$tools" | awk -v n="$name" '$1 == n {print $2}')"
  [ -n "$class" ] || { echo "$name: not a known Kafka tool" >&2; exit 1; }
fi

# kafka-run-class.sh's default JVM options (G1, short pauses).
perf="-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
# Tools log warnings to stderr and get a small heap.
heap="-Xmx256m"; log4j="$K/config/tools-log4j2.yaml"; cds="$K/cds/$class.jsa"
case "$class" in
  kafka.Kafka)
    # The broker: INFO to stdout, a heap sized for several brokers on one host.
    # C1 only (TieredStopAtLevel=1): on 2 shared cores it started ~2.5 s sooner
    # AND produced 15-20 % more (1-3 M records, acks=all) than with C2, whose
    # compiler threads compete with the broker for the CPU.
    heap="-Xms256m -Xmx512m"; log4j="$K/config/log4j2.yaml"; perf="$perf -XX:TieredStopAtLevel=1" ;;
  *Performance|*EndToEndLatency|*Verifiable*) ;;  # throughput tools: as upstream
  *)
    # Short-lived admin tools start faster with C1 only and the serial GC.
    perf="-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"
    [ -f "$cds" ] || cds="$K/cds/tools.jsa" ;;
esac
[ -f "$log4j" ] || log4j="/etc/kafka/docker/$(basename "$log4j")"
jmx=""
if [ -n "${JMX_PORT:-}" ]; then
  jmx="${KAFKA_JMX_OPTS:--Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false} -Dcom.sun.management.jmxremote.port=$JMX_PORT"
elif [ -n "${KAFKA_JMX_OPTS:-}" ]; then
  jmx="$KAFKA_JMX_OPTS"
fi
debug=""
[ -z "${KAFKA_DEBUG:-}" ] || debug="-agentlib:jdwp=transport=dt_socket,server=y,suspend=${DEBUG_SUSPEND_FLAG:-n},address=*:${JAVA_DEBUG_PORT:-5005}"
# The class-data-sharing archive made at image build (cds.sh): ~3 s faster
# broker start, tools 1 s instead of 3. The JVM checks it and ignores a stale
# one; not used when the caller manages CDS itself.
share=""
case "${KAFKA_JVM_PERFORMANCE_OPTS:-} ${KAFKA_OPTS:-}" in
  *Xshare*|*SharedArchiveFile*|*ArchiveClassesAtExit*) ;;
  *) [ ! -f "$cds" ] || share="-XX:SharedArchiveFile=$cds -Xshare:auto" ;;
esac
# shellcheck disable=SC2086  # the *_OPTS are word lists, as in kafka-run-class.sh
exec java ${KAFKA_HEAP_OPTS:-$heap} ${KAFKA_JVM_PERFORMANCE_OPTS:-$perf} $share ${KAFKA_GC_LOG_OPTS:-} \
  $jmx $debug ${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$log4j} ${KAFKA_OPTS:-} \
  -cp "$K/libs/*" "$class" "$@"
