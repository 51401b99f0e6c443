#!/bin/sh
# Adds the accounts bench/peers.py uses beside the kit's `test` and `bench` (`speed`, `speedpop`,
# `speedbig`; password testpass) to the peers of ../shared/peers: Dovecot's users file, Postfix's
# vmailbox and their Maildirs. Run as root after the kit's `setup` (which rewrites both files: run
# this again after it) and `start`. Idempotent.
#
#     bench/peer_accounts.sh "$PEERS_DIR"
set -eu
dir=${1:?usage: bench/peer_accounts.sh PEERS_DIR}
[ -f "$dir/dovecot/users" ] && [ -f "$dir/postfix/etc/vmailbox" ] || { echo "peer_accounts.sh: $dir: run the kit's setup first" >&2; exit 2; }
for u in speed speedpop speedbig; do
  grep -q "^$u:" "$dir/dovecot/users" || echo "$u:{PLAIN}testpass::::::" >> "$dir/dovecot/users"
  grep -q "^$u@" "$dir/postfix/etc/vmailbox" || printf '%-24s %s/Maildir/\n' "$u@peers.test" "$u" >> "$dir/postfix/etc/vmailbox"
  install -d -m 700 -o vmail -g vmail "$dir/mail/$u" "$dir/mail/$u/Maildir" \
    "$dir/mail/$u/Maildir/new" "$dir/mail/$u/Maildir/cur" "$dir/mail/$u/Maildir/tmp"
done
# Postfix reads a texthash map when a process starts: make the running ones start again
if postfix -c "$dir/postfix/etc" status >/dev/null 2>&1; then postfix -c "$dir/postfix/etc" reload; fi
echo "peer accounts: speed speedpop speedbig (password testpass) in $dir"
