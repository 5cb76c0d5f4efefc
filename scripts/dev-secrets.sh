#!/usr/bin/env bash
# Development secrets for the Compose stack, made once into a git-ignored folder:
#   postgres.env, mongo.env (datastore credentials), redis.conf (requirepass),
#   auth.env, users.env (the services' connection URLs, the event channel's included),
#   signing-keys.json (auth's private JWKS).
# Needs only Docker and standard tools: passwords come from /dev/urandom, and the signing keys
# from auth's own key CLI, run inside the auth image.
#
#   scripts/dev-secrets.sh            make whatever is missing (never overwrites)
#   scripts/dev-secrets.sh rotate     add a new signing key, keep the old one published
#
# Environment: GATEHOUSE_SECRETS_DIR (default .secrets), AUTH_IMAGE (default gatehouse-auth:dev),
# and the Compose variables (PYTHON_IMAGE, COMPOSE_PROJECT_NAME, ...) for building that image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secrets_dir=${GATEHOUSE_SECRETS_DIR:-.secrets}
auth_image=${AUTH_IMAGE:-gatehouse-auth:${GATEHOUSE_TAG:-dev}}
action=${1:-ensure}

# shellcheck source=lib/password.sh
. scripts/lib/password.sh

write_passwords() {
  local postgres_password redis_password mongo_password
  postgres_password=$(password)
  redis_password=$(password)
  mongo_password=$(password)
  # Files are 0644 so the containers' unprivileged users can read their bind mounts; the
  # folder itself is 0700, so no other user of this machine can reach them.
  cat >"$secrets_dir/postgres.env" <<END
POSTGRES_USER=gatehouse
POSTGRES_PASSWORD=$postgres_password
POSTGRES_DB=gatehouse_users
END
  cat >"$secrets_dir/mongo.env" <<END
MONGO_INITDB_ROOT_USERNAME=gatehouse
MONGO_INITDB_ROOT_PASSWORD=$mongo_password
END
  cat >"$secrets_dir/redis.conf" <<END
requirepass $redis_password
appendonly yes
END
  cat >"$secrets_dir/auth.env" <<END
AUTH_MONGO_URL=mongodb://gatehouse:$mongo_password@mongo:27017/?authSource=admin
AUTH_REDIS_URL=redis://default:$redis_password@redis:6379/0
END
  add_event_channel_urls
  cat >"$secrets_dir/users.env" <<END
USERS_DATABASE_URL=postgresql+asyncpg://gatehouse:$postgres_password@postgres:5432/gatehouse_users
USERS_REDIS_URL=redis://default:$redis_password@redis:6379/1
END
  chmod 0644 "$secrets_dir"/{postgres.env,mongo.env,redis.conf,auth.env,users.env}
}

add_event_channel_urls() {
  # The event channel (docs/events.md): every service's *_EVENTS_REDIS_URL names the same
  # Redis database (0), where the streams live. FOR NOW the default user, as AUTH_REDIS_URL;
  # per-service ACL users replace it (scripts/lib/redis-acl.sh, when merged). Appended to a
  # secrets folder made before the channel existed, from the password it already holds.
  local redis_password
  if ! grep -q '^AUTH_EVENTS_REDIS_URL=' "$secrets_dir/auth.env"; then
    redis_password=$(sed -n 's/^requirepass //p' "$secrets_dir/redis.conf")
    echo "AUTH_EVENTS_REDIS_URL=redis://default:$redis_password@redis:6379/0" >>"$secrets_dir/auth.env"
  fi
}

run_key_cli() {
  # Built here because the key CLI ships in the auth image; a no-op when it is up to date.
  docker compose build --quiet auth >/dev/null
  docker run --rm --network none --user "$(id -u):$(id -g)" \
    -v "$(cd "$secrets_dir" && pwd):/secrets" "$auth_image" \
    python -m gatehouse_auth.cli.keys "$@"
  # The CLI writes 0600; the auth container runs as another uid (see write_passwords).
  chmod 0644 "$secrets_dir/signing-keys.json"
}

mkdir -p "$secrets_dir"
chmod 0700 "$secrets_dir"

case "$action" in
  ensure)
    # The datastores keep their first password in their volumes: never regenerate it alone.
    if [ ! -f "$secrets_dir/postgres.env" ]; then
      write_passwords
      echo "dev-secrets: wrote passwords to $secrets_dir/"
    fi
    add_event_channel_urls
    if [ ! -f "$secrets_dir/signing-keys.json" ]; then
      run_key_cli generate --file /secrets/signing-keys.json
      echo "dev-secrets: wrote a signing key set to $secrets_dir/signing-keys.json"
    fi
    ;;
  rotate)
    [ -f "$secrets_dir/signing-keys.json" ] || { echo "no key set yet: run make up" >&2; exit 1; }
    run_key_cli rotate --file /secrets/signing-keys.json
    ;;
  *)
    echo "usage: $0 [ensure|rotate]" >&2
    exit 2
    ;;
esac
