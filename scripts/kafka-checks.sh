#!/usr/bin/env bash
# Runs the Kafka distribution's librdkafka checks against the broker image:
#   roundtrip   one node, PLAINTEXT published on a free host port
#   leader-kill three KRaft nodes on a private network, RF 3, min ISR 2; the
#               partition leader's container is SIGKILLed mid-produce
#   secure      one node with a SASL_SSL (SCRAM-SHA-512) listener and ACLs,
#               users created with kafka-configs.sh through the internal listener
# Prints one line per check and exits non-zero when one fails.
#   scripts/kafka-checks.sh [roundtrip|leader-kill|secure ...]   (default: all)
#   KAFKA_CHECK_IMAGE  image to test (default saga/kafka:4.4.0, built if needed;
#                      apache/kafka:4.4.0 takes the same settings)
#   KAFKA_CHECKS       directory of roundtrip.py, leader_kill.py, secure.py
#                      (default: checks/ of the Kafka distribution, see build.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${KAFKA_CHECK_IMAGE:-saga/kafka:4.4.0}"
if [ -z "${KAFKA_CHECKS:-}" ]; then
  for d in "${KAFKA_DIST:-}" "$ROOT/../shared/kafka/4.4.0" /work/shared/kafka/4.4.0; do
    [ -n "$d" ] && [ -f "$d/checks/roundtrip.py" ] && { KAFKA_CHECKS="$d/checks"; break; }
  done
fi
[ -f "${KAFKA_CHECKS:-}/roundtrip.py" ] || { echo "no checks: set KAFKA_CHECKS to the directory of roundtrip.py" >&2; exit 1; }
case "$IMAGE" in saga/*) "$ROOT/compose/images/build.sh" >/dev/null ;; esac
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install -q confluent-kafka

P="kchk$$-"                      # container-name prefix, unique per run
NET="${P}net" WORK="$(mktemp -d)"
cleanup() {
  docker ps -aq --filter "name=^$P" | xargs -r docker rm -fv >/dev/null
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cluster_id() { python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'; }
# Settings every node here shares: KRaft combined node, no auto-created topics.
COMMON=(-e KAFKA_PROCESS_ROLES=broker,controller -e KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER
        -e KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0 -e KAFKA_AUTO_CREATE_TOPICS_ENABLE=false)
SINGLE=(-e KAFKA_NODE_ID=1 -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1
        -e KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1 -e KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1
        -e KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR=1 -e KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR=1)

# wait_ready NAME...: polls the logs until every node says "Kafka Server started".
wait_ready() {
  local deadline=$((SECONDS + 120)) n
  for n in "$@"; do
    # (grep without -q reads to the end: no SIGPIPE for docker logs + pipefail)
    until docker logs "$n" 2>&1 | grep 'Kafka Server started' >/dev/null; do
      if [ "$(docker inspect -f '{{.State.Running}}' "$n" 2>/dev/null)" != true ] || [ $SECONDS -ge $deadline ]; then
        echo "$n did not start:"; docker logs "$n" 2>&1 | tail -30; return 1
      fi
      sleep 0.2
    done
  done
}
# wait_brokers BOOTSTRAP N: polls metadata until N brokers are registered.
wait_brokers() {
  python3 - "$1" "$2" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient
a, deadline = AdminClient({"bootstrap.servers": sys.argv[1]}), time.time() + 60
while len(a.list_topics(timeout=10).brokers) < int(sys.argv[2]):
    if time.time() > deadline:
        sys.exit("fewer than %s brokers registered" % sys.argv[2])
    time.sleep(0.2)
PY
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % ($(now) - $1))"; }
results=() failed=0
# run_check NAME SCRIPT ARGS...: the script's findings on stdout; librdkafka's
# own log lines (stderr) only when the check fails. A script waits forever
# for a broker that is gone, hence the timeout.
run_check() {
  local name="$1"; shift
  timeout 300 python3 "$KAFKA_CHECKS/$@" 2>"$WORK/$name.err" && return 0
  echo "--- $name: librdkafka log (last 20 lines)"; tail -20 "$WORK/$name.err"
  echo "--- this run's containers now:"; docker ps -a --filter "name=^$P" --format '{{.Names}} {{.Status}}'
  return 1
}
record() {  # record NAME STATUS DETAIL
  results+=("$(printf '%-5s %-12s %s' "$([ "$2" = 0 ] && echo PASS || echo FAIL)" "$1" "$3")")
  [ "$2" = 0 ] || failed=1
}

check_roundtrip() {
  local port n="${P}single" t0 ready
  port="$(free_port)"; t0="$(now)"
  docker run -d --name "$n" -p "127.0.0.1:$port:$port" "${COMMON[@]}" "${SINGLE[@]}" \
    -e CLUSTER_ID="$(cluster_id)" -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093 \
    -e KAFKA_LISTENERS="PLAINTEXT://0.0.0.0:$port,CONTROLLER://localhost:9093" \
    -e KAFKA_ADVERTISED_LISTENERS="PLAINTEXT://127.0.0.1:$port" \
    -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT \
    -e KAFKA_INTER_BROKER_LISTENER_NAME=PLAINTEXT "$IMAGE" >/dev/null
  wait_ready "$n" || { record roundtrip 1 "one node did not start"; return; }
  ready="$(since "$t0")"
  if run_check roundtrip roundtrip.py "127.0.0.1:$port"; then
    record roundtrip 0 "one node ready in ${ready} s after docker run"
  else
    record roundtrip 1 "roundtrip.py failed (node ready in ${ready} s)"
  fi
  docker rm -fv "$n" >/dev/null 2>&1 || true
}

check_leader_kill() {
  local i t0 ready voters="1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093" id boot="" ports=()
  docker network create "$NET" >/dev/null
  id="$(cluster_id)"
  for i in 1 2 3; do ports[i]="$(free_port)"; boot="${boot:+$boot,}127.0.0.1:${ports[i]}"; done
  t0="$(now)"
  for i in 1 2 3; do   # started side by side, as a cluster is
    docker run -d --name "$P$i" --network "$NET" --network-alias "kafka-$i" \
      -p "127.0.0.1:${ports[i]}:${ports[i]}" "${COMMON[@]}" -e CLUSTER_ID="$id" \
      -e KAFKA_NODE_ID="$i" -e KAFKA_CONTROLLER_QUORUM_VOTERS="$voters" \
      -e KAFKA_LISTENERS="INTERNAL://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093,EXTERNAL://0.0.0.0:${ports[i]}" \
      -e KAFKA_ADVERTISED_LISTENERS="INTERNAL://kafka-$i:9092,EXTERNAL://127.0.0.1:${ports[i]}" \
      -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT \
      -e KAFKA_INTER_BROKER_LISTENER_NAME=INTERNAL \
      -e KAFKA_DEFAULT_REPLICATION_FACTOR=3 -e KAFKA_MIN_INSYNC_REPLICAS=2 \
      -e KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE=false -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=3 \
      -e KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=3 -e KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=2 \
      "$IMAGE" >/dev/null &
  done
  wait
  wait_ready "${P}1" "${P}2" "${P}3" && wait_brokers "$boot" 3 \
    || { record leader-kill 1 "three nodes did not start"; return; }
  ready="$(since "$t0")"
  # leader_kill.py appends the leader's node id: "docker kill <prefix>N".
  if run_check leader-kill leader_kill.py "$boot" "docker kill $P"; then
    record leader-kill 0 "three nodes ready in ${ready} s from docker run"
  else
    record leader-kill 1 "leader_kill.py failed (nodes ready in ${ready} s)"
  fi
  docker rm -fv "${P}1" "${P}2" "${P}3" >/dev/null 2>&1 || true
}

check_secure() {
  local port n="${P}secure" t0 ready u
  port="$(free_port)"
  # A CA and a broker certificate for localhost / 127.0.0.1 (README's steps).
  ( cd "$WORK"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=test-ca
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 30 -extfile san.ext
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pkcs8.key
    cat broker.pkcs8.key broker.pem > broker-keystore.pem
    chmod 644 broker-keystore.pem ca.pem ) >/dev/null 2>&1   # readable by upstream's appuser too
  t0="$(now)"
  # SECURE (SASL_SSL) is the only listener published; INTERNAL and CONTROLLER
  # are plaintext User:ANONYMOUS (a super user) on the container's loopback.
  docker run -d --name "$n" -p "127.0.0.1:$port:$port" -v "$WORK:/etc/kafka/tls:ro" \
    "${COMMON[@]}" "${SINGLE[@]}" -e CLUSTER_ID="$(cluster_id)" \
    -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@127.0.0.1:9093 \
    -e KAFKA_LISTENERS="INTERNAL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SECURE://0.0.0.0:$port" \
    -e KAFKA_ADVERTISED_LISTENERS="INTERNAL://127.0.0.1:9092,SECURE://127.0.0.1:$port" \
    -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_SSL \
    -e KAFKA_INTER_BROKER_LISTENER_NAME=INTERNAL -e KAFKA_SASL_ENABLED_MECHANISMS=SCRAM-SHA-512 \
    -e KAFKA_LISTENER_NAME_SECURE_SCRAM___SHA___512_SASL_JAAS_CONFIG='org.apache.kafka.common.security.scram.ScramLoginModule required;' \
    -e KAFKA_SSL_KEYSTORE_TYPE=PEM -e KAFKA_SSL_KEYSTORE_LOCATION=/etc/kafka/tls/broker-keystore.pem \
    -e KAFKA_AUTHORIZER_CLASS_NAME=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
    -e 'KAFKA_SUPER_USERS=User:admin;User:ANONYMOUS' -e KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND=false \
    "$IMAGE" >/dev/null
  wait_ready "$n" || { record secure 1 "the SASL_SSL node did not start"; return; }
  ready="$(since "$t0")"
  for u in admin reader; do
    docker exec "$n" /opt/kafka/bin/kafka-configs.sh --bootstrap-server localhost:9092 --alter \
      --add-config "SCRAM-SHA-512=[password=$u-secret]" --entity-type users --entity-name "$u" >/dev/null \
      || { record secure 1 "kafka-configs.sh could not create user $u"; return; }
  done
  # The credentials reach the broker through the metadata log: wait for them.
  local deadline=$((SECONDS + 30))
  until [ "$(docker exec "$n" /opt/kafka/bin/kafka-configs.sh --bootstrap-server localhost:9092 --describe \
               --entity-type users 2>/dev/null | grep -c 'SCRAM-SHA-512')" -ge 2 ] || [ $SECONDS -ge $deadline ]; do
    sleep 0.5
  done
  if run_check secure secure.py "127.0.0.1:$port" "$WORK/ca.pem" admin-secret reader-secret; then
    record secure 0 "SASL_SSL node ready in ${ready} s; users made with kafka-configs.sh"
  else
    record secure 1 "secure.py failed"; docker logs "$n" 2>&1 | grep -E 'ERROR|WARN' | tail -10 || true
  fi
  docker rm -fv "$n" >/dev/null 2>&1 || true
}

echo "image: $IMAGE ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c8-19))"
for c in "${@:-roundtrip leader-kill secure}"; do
  for c in $c; do "check_${c//-/_}"; done
done
echo
printf '%s\n' "${results[@]}"
exit "$failed"
