#!/bin/sh
# Start Postfix in the foreground. Settings from the environment, applied with
# postconf before the start:
#   POSTFIX_MYHOSTNAME   the name in the banner and Received: lines
#   POSTFIX_SETTINGS     extra main.cf lines, separated by ";", e.g.
#                        "queue_run_delay=5s;minimal_backoff_time=5s"
# Without a certificate mounted at /etc/postfix/tls/ (fullchain.pem, privkey.pem)
# STARTTLS is not offered: the image ships no key of its own.
set -eu
if [ -n "${POSTFIX_MYHOSTNAME:-}" ]; then
    postconf -e "myhostname=${POSTFIX_MYHOSTNAME}"
fi
if [ ! -r /etc/postfix/tls/fullchain.pem ] || [ ! -r /etc/postfix/tls/privkey.pem ]; then
    echo "postfix-entrypoint: no certificate in /etc/postfix/tls/: STARTTLS is off" >&2
    postconf -e smtpd_tls_security_level=none
fi
if [ -n "${POSTFIX_SETTINGS:-}" ]; then
    old_ifs=$IFS
    IFS=';'
    for setting in $POSTFIX_SETTINGS; do
        postconf -e "$setting"
    done
    IFS=$old_ifs
fi
exec postfix start-fg
