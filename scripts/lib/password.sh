# Sourced by the secret generators (scripts/dev-secrets.sh, infra/k8s/overlays/dev/generate-secrets.sh).

# password: 32 alphanumerics (about 190 bits) from /dev/urandom, safe inside URLs, env files and
# config files without quoting.
password() {
  local out=""
  while [ "${#out}" -lt 32 ]; do
    out+=$(head -c 64 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
  done
  printf '%s' "${out:0:32}"
}
