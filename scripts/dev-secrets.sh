#!/usr/bin/env bash
# Development secrets for the Compose stack, made once into a git-ignored folder:
#   postgres.env, mongo.env (datastore credentials), redis.conf (requirepass for operators, and
#   one account per service: scripts/lib/redis-acl.sh), auth.env, users.env, gateway.env (the
#   services' connection URLs, the event channel's included), signing-keys.json (auth's
#   private JWKS).
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
# shellcheck source=lib/redis-acl.sh
. scripts/lib/redis-acl.sh

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
END
  cat >"$secrets_dir/users.env" <<END
USERS_DATABASE_URL=postgresql+asyncpg://gatehouse:$postgres_password@postgres:5432/gatehouse_users
END
  chmod 0644 "$secrets_dir"/{postgres.env,mongo.env,redis.conf,auth.env,users.env}
}

# FILE without its lines that start with PREFIX, then stdin appended (permissions kept).
replace_lines() {
  local file=$1 prefix=$2
  { grep -v "^$prefix" "$file" || true; cat; } >"$file.new"
  cat "$file.new" >"$file"
  rm -f "$file.new"
}

# The password of USER in the Redis URL that FILE gives to VARIABLE, or a new one if there is
# none yet: accounts made earlier keep their passwords, so running containers stay connected.
account_password() {
  local file=$1 variable=$2 user=$3 existing=""
  [ -f "$file" ] && existing=$(sed -n "s|^$variable=redis://$user:\([A-Za-z0-9]*\)@.*|\1|p" "$file")
  if [ -n "$existing" ]; then printf '%s' "$existing"; else password; fi
}

# Redis's accounts for auth, users and the gateway, and the services' URLs that use them. Also
# upgrades secrets made before an account existed: Redis reads its accounts from redis.conf at
# each start, so nothing in its volume changes (restart redis to load a new account).
write_redis_accounts() {
  local auth_password users_password gateway_password
  auth_password=$(account_password "$secrets_dir/auth.env" AUTH_REDIS_URL auth)
  users_password=$(account_password "$secrets_dir/users.env" USERS_REDIS_URL users)
  gateway_password=$(account_password "$secrets_dir/gateway.env" GATEWAY_EVENTS_REDIS_URL gateway)
  redis_acl_users "$auth_password" "$users_password" "$gateway_password" |
    replace_lines "$secrets_dir/redis.conf" "user "
  # The event channel (docs/events.md) is database 0, where the streams live, with each
  # service's own account: its ACL grants the stream commands of each of the service's roles.
  set_redis_url "$secrets_dir/auth.env" AUTH_REDIS_URL auth "$auth_password" 0
  set_redis_url "$secrets_dir/auth.env" AUTH_EVENTS_REDIS_URL auth "$auth_password" 0
  set_redis_url "$secrets_dir/users.env" USERS_REDIS_URL users "$users_password" 1
  set_redis_url "$secrets_dir/users.env" USERS_EVENTS_REDIS_URL users "$users_password" 0
  # The gateway's revocation feed reads the event streams, which live in database 0.
  touch "$secrets_dir/gateway.env"
  chmod 0644 "$secrets_dir/gateway.env"
  set_redis_url "$secrets_dir/gateway.env" GATEWAY_EVENTS_REDIS_URL gateway "$gateway_password" 0
}

# Sets VARIABLE in FILE to the URL of USER's Redis account (PASSWORD) on DATABASE.
set_redis_url() {
  local file=$1 variable=$2 user=$3 password=$4 database=$5
  printf '%s=redis://%s:%s@redis:6379/%s\n' "$variable" "$user" "$password" "$database" |
    replace_lines "$file" "$variable="
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
    # Also for secrets made before the accounts, or before the event channel, existed.
    if ! grep -q '^user gateway ' "$secrets_dir/redis.conf" ||
      ! grep -q '^USERS_EVENTS_REDIS_URL=' "$secrets_dir/users.env" ||
      ! grep -q '^AUTH_EVENTS_REDIS_URL=redis://auth:' "$secrets_dir/auth.env"; then
      write_redis_accounts
      echo "dev-secrets: wrote Redis accounts for auth, users and the gateway to $secrets_dir/"
    fi
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
