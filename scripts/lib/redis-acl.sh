# Sourced by the secret generators (scripts/dev-secrets.sh, infra/k8s/overlays/dev/generate-secrets.sh)
# and read by tests/redis_acl: the one definition of the Redis accounts of the services.

# redis_acl_users AUTH_PASSWORD USERS_PASSWORD: the `user` lines of redis.conf. Each service
# has its own account, limited to its own keys and to the commands it runs (an allow-list:
# `-@all` first), so a compromised users service cannot read or clear auth's throttling
# counters. The `default` account (requirepass) stays for operators and health checks only;
# no service is given its password.
#
#   auth    keys gatehouse:auth:* (AUTH_REDIS_KEY_PREFIX; change both together): login and
#           registration throttling, one Lua script (EVALSHA; TIME and the sorted-set
#           commands inside it) and ZREM in a MULTI
#   users   keys users:* (the profile cache: MGET, SET with expiry, UNLINK)
#   both    keys events:* in a second selector: their event streams events:auth and
#           events:users (XADD to their own, consumer groups on either), the dead-letter
#           streams events:<service>:dead and the dedupe keys events:seen:<group>:*
# Pub/Sub channels: none (resetchannels). Redis 7.0 or later (selectors).
redis_acl_users() {
  local connection='+ping +select +client|setname +multi +exec +discard'
  local events='(~events:* +xadd +xreadgroup +xack +xautoclaim +xclaim +xinfo +xgroup +xrange +xrevrange +xlen +xpending +xtrim +xdel +set +get +exists +del +expire +evalsha +script|load)'
  printf 'user auth on >%s resetkeys resetchannels -@all %s ~gatehouse:auth:* %s %s\n' \
    "$1" "$connection" \
    '+evalsha +script|load +time +zadd +zrem +zremrangebyscore +zrange +zcard +expire' \
    "$events"
  printf 'user users on >%s resetkeys resetchannels -@all %s ~users:* %s %s\n' \
    "$2" "$connection" '+mget +get +set +unlink +del' "$events"
}
