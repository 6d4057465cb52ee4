#!/usr/bin/env bash
# /etc/kafka/docker/run: configures and starts a Kafka node the way the
# apache/kafka image does.
#  * Every environment variable KAFKA_<NAME> becomes the property <name>:
#    lower-cased, `_` -> `.`, `__` -> `_`, `___` -> `-` (upstream's ConvertKey,
#    e.g. KAFKA_LISTENER_NAME_SECURE_SCRAM___SHA___512_SASL_JAAS_CONFIG), except
#    the launcher's own variables (EXCLUDE below).
#  * No KAFKA_ property and no /mnt/shared/config/server.properties: the
#    single-node defaults in /etc/kafka/docker/server.properties.
#  * KAFKA_LISTENERS, when unset, is KAFKA_ADVERTISED_LISTENERS on 0.0.0.0.
#  * log.dirs defaults to /var/lib/kafka/data (the image's volume).
#  * CLUSTER_ID (default upstream's 5L6g3nShT-eMCtK--X86sw) formats a log dir
#    that has no meta.properties yet; a restarted container keeps its data.
set -euo pipefail
CONF=/opt/kafka/config/server.properties
DOCKER=/etc/kafka/docker
SECRETS=/etc/kafka/secrets
export CLUSTER_ID="${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}"
EXCLUDE=" KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_HEAP_OPT KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS
  KAFKA_LOG4J_OPTS KAFKA_GC_LOG_OPTS KAFKA_JMX_OPTS KAFKA_JMX_PORT KAFKA_JMX_HOSTNAME KAFKA_DEBUG
  KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_HOME
  KAFKA_SSL_KEYSTORE_FILENAME KAFKA_SSL_KEYSTORE_CREDENTIALS KAFKA_SSL_KEY_CREDENTIALS
  KAFKA_SSL_TRUSTSTORE_FILENAME KAFKA_SSL_TRUSTSTORE_CREDENTIALS"
EXCLUDE=" $(echo $EXCLUDE) "  # one space between names
note() { echo "===> $*"; }

# Upstream's KRaft rules: a controller-only node advertises nothing; listeners
# follow the advertised ones when not given.
if [ "${KAFKA_PROCESS_ROLES:-}" = controller ]; then
  [ -z "${KAFKA_ADVERTISED_LISTENERS:-}" ] || { echo "KAFKA_ADVERTISED_LISTENERS is not supported on a KRaft controller." >&2; exit 1; }
  unset KAFKA_ADVERTISED_LISTENERS
elif [ -z "${KAFKA_LISTENERS:-}" ] && [ -n "${KAFKA_ADVERTISED_LISTENERS:-}" ]; then
  export KAFKA_LISTENERS
  KAFKA_LISTENERS="$(echo "$KAFKA_ADVERTISED_LISTENERS" | sed -e 's|://[^:]*:|://0.0.0.0:|g')"
fi
# Upstream's secrets convention: file names under /etc/kafka/secrets. Used when
# given; upstream REQUIRES them (and KAFKA_OPTS for SASL), here it is a note.
if [ -n "${KAFKA_SSL_KEYSTORE_FILENAME:-}" ]; then export KAFKA_SSL_KEYSTORE_LOCATION="$SECRETS/$KAFKA_SSL_KEYSTORE_FILENAME"; fi
if [ -n "${KAFKA_SSL_TRUSTSTORE_FILENAME:-}" ]; then export KAFKA_SSL_TRUSTSTORE_LOCATION="$SECRETS/$KAFKA_SSL_TRUSTSTORE_FILENAME"; fi
if [ -n "${KAFKA_SSL_KEY_CREDENTIALS:-}" ]; then export KAFKA_SSL_KEY_PASSWORD="$(cat "$SECRETS/$KAFKA_SSL_KEY_CREDENTIALS")"; fi
if [ -n "${KAFKA_SSL_KEYSTORE_CREDENTIALS:-}" ]; then export KAFKA_SSL_KEYSTORE_PASSWORD="$(cat "$SECRETS/$KAFKA_SSL_KEYSTORE_CREDENTIALS")"; fi
if [ -n "${KAFKA_SSL_TRUSTSTORE_CREDENTIALS:-}" ]; then export KAFKA_SSL_TRUSTSTORE_PASSWORD="$(cat "$SECRETS/$KAFKA_SSL_TRUSTSTORE_CREDENTIALS")"; fi
case "${KAFKA_ADVERTISED_LISTENERS:-}" in *SSL://*)
  [ -n "${KAFKA_SSL_KEYSTORE_FILENAME:-}" ] && [ -n "${KAFKA_SSL_KEY_CREDENTIALS:-}" ] && [ -n "${KAFKA_SSL_KEYSTORE_CREDENTIALS:-}" ] \
    || note "note: apache/kafka would refuse this SSL listener without KAFKA_SSL_KEYSTORE_FILENAME, KAFKA_SSL_KEY_CREDENTIALS and KAFKA_SSL_KEYSTORE_CREDENTIALS" ;;
esac
case "${KAFKA_ADVERTISED_LISTENERS:-}" in *SASL_*://*)
  [ -n "${KAFKA_OPTS:-}" ] || note "note: apache/kafka would refuse a SASL listener with KAFKA_OPTS unset" ;;
esac
# JMX as upstream's launch: KAFKA_JMX_PORT opens remote JMX on that port.
if [ -n "${KAFKA_JMX_PORT:-}" ]; then
  export JMX_PORT="$KAFKA_JMX_PORT"
  export KAFKA_JMX_OPTS="${KAFKA_JMX_OPTS:--Dcom.sun.management.jmxremote=true -Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false} -Djava.rmi.server.hostname=${KAFKA_JMX_HOSTNAME:-$(hostname -i | cut -d' ' -f1)} -Dcom.sun.management.jmxremote.local.only=false -Dcom.sun.management.jmxremote.rmi.port=$JMX_PORT"
fi

# The properties from the environment, sorted by name like upstream's.
render() {
  local name key
  for name in $(compgen -e | grep '^KAFKA_' || true); do
    case "$EXCLUDE" in *" $name "*) continue ;; esac
    key="$(printf '%s' "${name#KAFKA_}" | sed -E 's/([^_])_([^_])/\1.\2/g; s/___/-/g; s/__/_/g' | tr '[:upper:]' '[:lower:]')"
    printf '%s=%s\n' "$key" "${!name}"
  done | sort -t= -k1,1
}
mkdir -p "$(dirname "$CONF")"
ENV_PROPS="$(render)"
if [ -e /mnt/shared/config/server.properties ]; then
  note "configs from /mnt/shared/config/server.properties, then the environment's"
  { cat /mnt/shared/config/server.properties; echo; echo "$ENV_PROPS"; } > "$CONF"
elif [ -n "$ENV_PROPS" ]; then
  note "configs from the environment"
  echo "$ENV_PROPS" > "$CONF"
else
  note "no KAFKA_* configs: single-node defaults"
  cp "$DOCKER/server.properties" "$CONF"
fi
grep -qE '^log\.dirs?=' "$CONF" || echo "log.dirs=/var/lib/kafka/data" >> "$CONF"
for f in log4j2.yaml tools-log4j2.yaml; do [ -e "/opt/kafka/config/$f" ] || cp "$DOCKER/$f" /opt/kafka/config/; done

# Format once: every log dir (and metadata.log.dir) without meta.properties.
prop() { sed -n "s/^$1=//p" "$CONF" | tail -1; }
dirs="$(prop 'log\.dirs'),$(prop 'log\.dir'),$(prop 'metadata\.log\.dir')"
dirs="$(echo ${dirs//,/ })"  # one space between dirs
unformatted=0
for d in $dirs; do [ -e "$d/meta.properties" ] || unformatted=1; done
if [ "$unformatted" = 1 ]; then
  note "formatting $dirs with cluster id $CLUSTER_ID"
  /opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$CONF"
fi
note "launching kafka"
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
