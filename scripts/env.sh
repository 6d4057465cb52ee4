# Sourced by the scripts: image names and the compose command.
# Images default to the locally built ones here; set the variables to the
# upstream images (apache/kafka:4.4.0, postgres:15) where you can pull.
export SAGA_BROKER_IMAGE="${SAGA_BROKER_IMAGE:-saga/kafka:4.4.0}"
export SAGA_POSTGRES_IMAGE="${SAGA_POSTGRES_IMAGE:-saga/postgres:15}"
export SAGA_RUNTIME_IMAGE="${SAGA_RUNTIME_IMAGE:-saga/runtime:latest}"
# tansu (scripts/install-tansu.sh, image saga/tansu:0.6.0) only when asked.
with_tansu() { [ "${SAGA_WITH_TANSU:-0}" = 1 ] || case "$SAGA_BROKER_IMAGE" in saga/tansu:*) true ;; *) false ;; esac; }
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose "$@"
  else
    echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
    return 1
  fi
}
