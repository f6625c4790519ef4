# shellcheck shell=bash
# Helpers shared by first boot and the image's lint (scripts/lint-image):
# reading the pre-seed file and writing the hotspot's NetworkManager keyfile.

log() { printf 'hearth-firstboot: %s\n' "$*" >&2; }

# preseed_get KEY FILE: prints the string value of a top-level `KEY = "..."`
# (or '...') line of the pre-seed TOML; fails when the key is absent.
preseed_get() {
  local key=$1 file=$2 line
  local basic="^[[:space:]]*${key}[[:space:]]*=[[:space:]]*\"((\\\\.|[^\\\\\"])*)\"[[:space:]]*(#.*)?$"
  local literal="^[[:space:]]*${key}[[:space:]]*=[[:space:]]*'([^']*)'[[:space:]]*(#.*)?$"
  [ -f "$file" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    if [[ $line =~ $basic ]]; then
      local v=${BASH_REMATCH[1]} res="" c
      while [ -n "$v" ]; do
        c=${v:0:1}; v=${v:1}
        if [ "$c" = "\\" ]; then c=${v:0:1}; v=${v:1}; fi
        res+=$c
      done
      printf '%s' "$res"
      return 0
    elif [[ $line =~ $literal ]]; then
      printf '%s' "${BASH_REMATCH[1]}"
      return 0
    fi
  done < "$file"
  return 1
}

# preseed_scrub < FILE: the file with its secret lines replaced by a note.
preseed_scrub() {
  sed -E \
    -e 's/^[[:space:]]*(hotspot_password|admin_password_hash)[[:space:]]*=.*$/# \1: applied on first boot and erased from this card/'
}

valid_ssid() { [[ $1 =~ ^[A-Za-z0-9_.-]([A-Za-z0-9\ _.-]{0,30}[A-Za-z0-9_.-])?$ ]]; }
valid_psk() { [[ ${#1} -ge 8 && ${#1} -le 63 && $1 =~ ^[[:print:]]+$ && $1 != *[![:ascii:]]* ]]; }

# GKeyFile escaping: backslash and every space.
keyfile_escape() { local v=${1//\\/\\\\}; printf '%s' "${v// /\\s}"; }

# hotspot_keyfile SSID [PSK]: the NetworkManager keyfile of the hotspot:
# 2.4 GHz access point, NetworkManager's DHCP and DNS (ipv4.method shared,
# 10.42.0.1/24), WPA2-PSK when PSK is given, open otherwise.
hotspot_keyfile() {
  local ssid=$1 psk=${2:-} uuid
  uuid=$(cat /proc/sys/kernel/random/uuid)
  cat <<KEYFILE
[connection]
id=Hearth-hotspot
uuid=$uuid
type=wifi
autoconnect=true
autoconnect-priority=100

[wifi]
mode=ap
ssid=$(keyfile_escape "$ssid")
band=bg
channel=6
KEYFILE
  if [ -n "$psk" ]; then
    cat <<KEYFILE

[wifi-security]
key-mgmt=wpa-psk
proto=rsn
pairwise=ccmp
group=ccmp
psk=$(keyfile_escape "$psk")
KEYFILE
  fi
  cat <<KEYFILE

[ipv4]
method=shared
address1=10.42.0.1/24

[ipv6]
method=disabled

[proxy]
KEYFILE
}
