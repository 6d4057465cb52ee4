# Sourced by the scripts: image names and the compose command.
# Images default to the locally built ones here; set the variables to the
# upstream images (apache/kafka:3.9.1, postgres:15) where you can pull.
export SAGA_BROKER_IMAGE="${SAGA_BROKER_IMAGE:-saga/tansu:0.6.0}"
export SAGA_POSTGRES_IMAGE="${SAGA_POSTGRES_IMAGE:-saga/postgres:15}"
export SAGA_RUNTIME_IMAGE="${SAGA_RUNTIME_IMAGE:-saga/runtime:latest}"
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
