#!/usr/bin/env bash
# Throwaway secrets for the Kubernetes dev overlay, made on this machine into the overlay's
# git-ignored .generated/ folder, which its secretGenerator reads. Nothing secret is committed,
# not even for dev: scanners stay quiet and no dev credential can be copied into prod.
#   postgres-credentials.env, mongo-credentials.env, redis-credentials.env   datastore accounts
#   redis.conf                                    Redis's accounts, rebuilt from the above
#   auth-datastores.env, users-datastores.env,
#   gateway-datastores.env                        the services' URLs, rebuilt from the accounts
#   signing-keys.json                             auth's private key set, from auth's key CLI
# Existing files are kept: a datastore keeps its first password in its volume, so a new one
# would lock the services out after the next apply. To start over, delete the folder together
# with the datastores (`kubectl delete -k`, then the PersistentVolumeClaims).
#
#   infra/k8s/overlays/dev/generate-secrets.sh [DIR]     DIR defaults to the overlay's .generated
#
# Messages go to stderr, so `make k8s-render` prints nothing but manifests. Needs uv (UV names
# another binary) and coreutils; every file is mode 0600 in a 0700 folder.
set -euo pipefail
umask 077

overlay_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$overlay_dir/../../../.." && pwd)
secrets_dir=${1:-$overlay_dir/.generated}
uv=${UV:-uv}

mkdir -p "$secrets_dir"
secrets_dir=$(cd "$secrets_dir" && pwd)
chmod 0700 "$secrets_dir"

# shellcheck source=../../../../scripts/lib/password.sh
. "$repo_root/scripts/lib/password.sh"
# shellcheck source=../../../../scripts/lib/redis-acl.sh
. "$repo_root/scripts/lib/redis-acl.sh"

# Stdin becomes FILE unless FILE already exists. `ln` refuses to replace a file atomically, so
# two runs at once (make and the tests) cannot leave mismatched passwords behind.
create_once() {
  local file=$1 temporary
  temporary=$(mktemp "$file.XXXXXX")
  cat >"$temporary"
  chmod 0600 "$temporary"
  if ln "$temporary" "$file" 2>/dev/null; then
    echo "generate-secrets: wrote $file" >&2
  fi
  rm -f "$temporary"
}

# Stdin replaces FILE, atomically, when it differs.
replace() {
  local file=$1 temporary
  temporary=$(mktemp "$file.XXXXXX")
  cat >"$temporary"
  chmod 0600 "$temporary"
  if cmp -s "$temporary" "$file"; then
    rm -f "$temporary"
  else
    mv -f "$temporary" "$file"
    echo "generate-secrets: wrote $file" >&2
  fi
}

value_of() {
  sed -n "s/^$2=//p" "$secrets_dir/$1"
}

[ -e "$secrets_dir/postgres-credentials.env" ] || create_once "$secrets_dir/postgres-credentials.env" <<END
username=gatehouse
password=$(password)
database=gatehouse_users
END
[ -e "$secrets_dir/mongo-credentials.env" ] || create_once "$secrets_dir/mongo-credentials.env" <<END
username=gatehouse
password=$(password)
END
# password: the default account, for operators and the readiness probe; auth-password,
# users-password and gateway-password: the services' own accounts (scripts/lib/redis-acl.sh).
[ -e "$secrets_dir/redis-credentials.env" ] || create_once "$secrets_dir/redis-credentials.env" <<END
password=$(password)
auth-password=$(password)
users-password=$(password)
gateway-password=$(password)
END
# Made before a service had its own Redis account: add it. Redis reads its accounts from
# redis.conf at each start, so new ones lock nobody out.
for account in auth users gateway; do
  if ! grep -q "^$account-password=" "$secrets_dir/redis-credentials.env"; then
    printf '%s-password=%s\n' "$account" "$(password)" >>"$secrets_dir/redis-credentials.env"
    echo "generate-secrets: added the $account Redis account to redis-credentials.env" >&2
  fi
done

# Derived, so they always match the accounts above (also after one of those was edited).
replace "$secrets_dir/redis.conf" <<END
requirepass $(value_of redis-credentials.env password)
appendonly yes
$(redis_acl_users "$(value_of redis-credentials.env auth-password)" "$(value_of redis-credentials.env users-password)" "$(value_of redis-credentials.env gateway-password)")
END
replace "$secrets_dir/auth-datastores.env" <<END
mongo-url=mongodb://$(value_of mongo-credentials.env username):$(value_of mongo-credentials.env password)@mongo:27017/?authSource=admin
redis-url=redis://auth:$(value_of redis-credentials.env auth-password)@redis:6379/0
events-redis-url=redis://auth:$(value_of redis-credentials.env auth-password)@redis:6379/0
END
replace "$secrets_dir/users-datastores.env" <<END
database-url=postgresql+asyncpg://$(value_of postgres-credentials.env username):$(value_of postgres-credentials.env password)@postgres:5432/$(value_of postgres-credentials.env database)
redis-url=redis://users:$(value_of redis-credentials.env users-password)@redis:6379/1
events-redis-url=redis://users:$(value_of redis-credentials.env users-password)@redis:6379/0
END
# The revocation feed's account; the streams live in database 0.
replace "$secrets_dir/gateway-datastores.env" <<END
events-redis-url=redis://gateway:$(value_of redis-credentials.env gateway-password)@redis:6379/0
END

keys_file=$secrets_dir/signing-keys.json
if [ ! -e "$keys_file" ]; then
  # The CLI refuses to overwrite: if a concurrent run made the file first, that one is kept.
  (cd "$repo_root" && "$uv" run --frozen python -m gatehouse_auth.cli.keys generate --file "$keys_file") >&2 ||
    [ -f "$keys_file" ]
fi
chmod 0600 "$secrets_dir"/*
