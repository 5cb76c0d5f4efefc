# Sourced by the secret generators (scripts/dev-secrets.sh, infra/k8s/overlays/dev/generate-secrets.sh)
# and run by tests/redis_acl: the one definition of the services' Redis accounts.

# redis_acl_users AUTH_PASSWORD USERS_PASSWORD GATEWAY_PASSWORD: the `user` lines of
# redis.conf. Each service has its own account, limited to its own keys and to the commands it
# runs (an allow-list: `-@all` first), so a compromised users service cannot read or clear
# auth's throttling counters. The `default` account (requirepass) stays for operators and
# health checks only; no service is given its password. Needs Redis 7.0 or later (selectors);
# no Pub/Sub.
#
#   auth     keys gatehouse:auth:* (AUTH_REDIS_KEY_PREFIX; change both together): throttling,
#            one Lua script (EVALSHA; TIME and the sorted-set commands inside it), ZREM in MULTI,
#            and BLPOP for the throttles' connection watch (gatehouse_common.redis_watch)
#   users    keys users:* (the profile cache: MGET, SET with expiry, UNLINK; it names its
#            connections users-cache, and users-cache-probe for its gate's PING)
#   auth and users   the event channel (docs/events.md), one selector per role: redis_acl_events
#   gateway  the revocation feed only: both streams, read only (redis_acl_feed)
redis_acl_users() {
  local connection='+ping +select +client|setname +multi +exec +discard'
  printf 'user auth on >%s resetkeys resetchannels -@all %s ~gatehouse:auth:* %s %s\n' \
    "$1" "$connection" \
    '+evalsha +script|load +time +zadd +zrem +zremrangebyscore +zrange +zcard +expire +blpop' \
    "$(redis_acl_events auth users)"
  printf 'user users on >%s resetkeys resetchannels -@all %s ~users:* %s %s\n' \
    "$2" "$connection" '+mget +get +set +unlink +del' "$(redis_acl_events users auth)"
  # No keys of its own and no transactions: it reads the streams and answers PING (readiness).
  printf 'user gateway on >%s resetkeys resetchannels -@all %s %s\n' \
    "$3" '+ping +select +client|setname' "$(redis_acl_feed)"
}

# redis_acl_feed: the revocation feed's selector. Every process that checks tokens reads both
# streams, read only (`%R~`): XRANGE to replay, XREAD to follow (one XREAD reads both).
redis_acl_feed() {
  printf '(%%R~events:auth %%R~events:users +xrange +xread)'
}

# redis_acl_events SERVICE OTHER: the selectors of SERVICE's roles on the event channel. A
# command is allowed when one selector allows it and all its keys, so each role is a selector:
#   revocation feed   redis_acl_feed
#   producer          its own stream: XADD only
#   consumer group    the other's stream: the group's commands, which write the group's state
#                     but cannot add entries; its dead-letter stream: XADD; its own seen keys
redis_acl_events() {
  local own=events:$1 consumed=events:$2
  printf '%s ' "$(redis_acl_feed)"
  printf '(~%s +xadd) ' "$own"
  printf '(~%s +xgroup|create +xreadgroup +xack +xautoclaim +xpending +xinfo|groups) ' "$consumed"
  printf '(~%s:dead +xadd) ' "$consumed"
  printf '(~events:seen:%s:* +set +get +del)' "$1"
}
